"""The shared (promoted) lock-like classes and Event, and promotion: see ``_xproc``.

Each class here is the cross-process form of a primitive, with the same API; an object
becomes one when its ``__reduce__`` first runs (``obj.__class__`` is swapped in place), or
is built as one when a process unpickles it. Condition and Barrier are in ``_shared_wait``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Awaitable, Coroutine
from types import MappingProxyType, TracebackType
from typing import Any

from plait._core import (
    WOKEN,
    WaitQueue,
    async_park,
    current_strand,
    hooks,
    park,
    safepoint,
)
from plait._errors import BrokenResourceError
from plait._sync import _robust
from plait._sync._common import MIGRATED, READY, check_lock_args, waiting_by_kind
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
    SEM_MAX,
    SharedState,
    bridge,
    defer_in,
    repair_owner,
    repair_permits,
    sem_wait,
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

_POLL_MIN, _POLL_MAX = 0.00005, 0.005
_monotonic = time.monotonic

# Shared primitives known in this process by name prefix, so unpickling one that is
# already here (sent back by a child) returns the very same object.
_known: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_known_lock = threading.Lock()


# -- the shared classes -----------------------------------------------------------------


class SharedLock(Lock):
    """A promoted :class:`plait.Lock`: the same API over one named semaphore.

    The holding process is recorded beside it (see ``_robust``). If that process dies
    holding the lock, the next strand that would wait for it gets
    :class:`plait.BrokenResourceError` naming the dead pid, and the lock is free again
    (what it guarded may be half-updated: the error says so once, then the lock serves
    as before). A process strand that is cancelled gives back what it holds.
    """

    __slots__ = ()

    # ``_inner`` *is* the named semaphore now, so a call that was half-way through a
    # local fast path when the lock was promoted takes and frees the shared lock itself.

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking is True and timeout == -1 and self._inner.acquire(False):
            self._shared.record.words[0] = _robust.TAG  # (as in __enter__)
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        wait = None if blocking is True and timeout == -1 else check_lock_args(blocking, timeout)
        return self._acquire_slow(current_strand(), wait)

    def _acquire_slow(self, me: Any, wait: float | None) -> bool:
        state: SharedState = self._shared
        if sem_wait(
            state, self._inner, self, wait, self._check, state.took_mutex, state.give_mutex
        ):
            if hooks.active:
                hooks.acquired(me, self)
            return True
        return False

    def _check(self, report: bool = True) -> bool:
        """A waiter's look at the holder: repair (and report) a dead one."""
        return repair_owner(self._shared, "lock", report=report)

    def _took_restored(self, me: Any) -> None:
        if hooks.active:
            hooks.acquired(me, self)

    def release(self) -> None:
        if hooks.active:
            hooks.released(current_strand(), self)
        # Un-record, then free. No critical section is needed here: the interpreter runs
        # a signal handler only after a call returns (or at a function's start, or a
        # loop's jump back), and there is no call between the store and the release.
        self._shared.record.words[0] = 0
        try:
            self._inner.release()
        except ValueError:
            raise RuntimeError("release unlocked lock") from None

    def _pass_on(self) -> None:
        self.release()

    def _after_free(self) -> None:
        pass  # a release that began before promotion freed the semaphore already

    def __enter__(self) -> bool:
        # The uncontended path. Its one unsafe moment -- taken, not yet recorded -- needs
        # no critical section: a SIGTERM handled while this frame runs waits until it
        # returns (see ``_xproc.defers``); at worst the cancellation lands in the caller
        # holding a lock recorded as this process's, which ``let_go_of_mine`` frees.
        if self._inner.acquire(False):
            self._shared.record.words[0] = _robust.TAG
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return self._acquire_slow(current_strand(), None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if hooks.active:
            hooks.released(current_strand(), self)
        self._shared.record.words[0] = 0  # (see release)
        try:
            self._inner.release()
        except ValueError:
            raise RuntimeError("release unlocked lock") from None

    def async_acquire(
        self, blocking: bool = True, timeout: float = -1
    ) -> Coroutine[Any, Any, bool]:
        wait = None if blocking is True and timeout == -1 else check_lock_args(blocking, timeout)
        return self._async_acquire_slow(current_strand(), wait)

    async def _async_acquire(self, me: Any, wait: float | None) -> bool:
        return await self._async_acquire_slow(me, wait)

    async def _async_acquire_slow(self, me: Any, wait: float | None) -> bool:
        state: SharedState = self._shared
        gate = bridge(self, check=self._check, took=state.took_mutex, untake=state.give_mutex)
        if await gate.wait(wait):
            if hooks.active:
                hooks.acquired(me, self)
            return True
        return False

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
        return bool(self._shared.sems[0]._get_value() == 0)

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
    ``with`` block then releases it on the way out); a dead holder is repaired silently
    first, and reported once the lock is ours.
    """
    dead: list[bool] = []

    def check() -> bool:
        repaired = lock._check(report=False)
        if repaired:
            dead.append(True)
        return bool(repaired)

    state: SharedState = lock._shared
    safepoint.enter()
    try:
        while not sem_wait(state, lock._inner, lock, None, check, state.took_mutex):
            pass
        lock._took_restored(me)
    finally:
        safepoint.leave()
    if dead:
        raise BrokenResourceError(
            "the shared lock of this condition was held by a process that died holding "
            "it: it is yours again, but what it guarded may be half-updated"
        )


class SharedRLock(RLock):
    """A promoted :class:`plait.RLock`: one named semaphore, the owner kept per process.

    Only the owner ever sets the owner, so each process keeps the owner strand and depth
    locally (a strand of another process never matches); the semaphore says whether *some*
    strand, anywhere, holds the lock, and the holding process is recorded beside it: a
    dead holder is reported as for :class:`SharedLock`.
    """

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
        state: SharedState = self._shared
        if sem_wait(
            state, self._inner, self, wait, self._check, state.took_mutex, state.give_mutex
        ):
            self._took(me)
            return True
        return False

    async def _async_acquire_slow(self, me: Any, wait: float | None) -> bool:
        state: SharedState = self._shared
        gate = bridge(self, check=self._check, took=state.took_mutex, untake=state.give_mutex)
        if await gate.wait(wait):
            self._took(me)
            return True
        return False

    def _check(self, report: bool = True) -> bool:
        return repair_owner(self._shared, "lock", report=report)

    def _took_restored(self, me: Any) -> None:
        self._took(me)

    def _pass_on(self) -> None:
        self._owner = None
        self._count = 0
        self._shared.give_mutex()

    def _after_free(self) -> None:
        pass  # a release that began before promotion freed the semaphore already

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
        return bool(self._inner._get_value() == 0)

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


# SharedLock.__enter__'s one unsafe moment is closed by deferring a SIGTERM handled there
defer_in(SharedLock.__enter__)
defer_in(SharedLock.acquire)


def _waiting(obj: Any) -> tuple[int, Any]:
    """Waiters of this process: coroutines in the local queue, strands blocked in the OS."""
    with obj._mutex:
        counts = dict(waiting_by_kind(obj._queue))
    state: SharedState = obj._shared
    for kind, n in state.blocked_by_kind().items():
        counts[kind] = counts.get(kind, 0) + n
    return sum(counts.values()), MappingProxyType(counts)


_VALUE_SLOT: Any = Semaphore.__dict__["_value"]


class _SharedSemaphoreBase:
    """The promoted form of a semaphore: permits live in one named semaphore.

    Each process's count of permits it took and has not given back is recorded beside it
    (see ``_robust``). When a strand finds no permit free and a process that died still
    held some, those permits are given back (never more than the initial value minus the
    free ones, so a semaphore used to signal never gains permits) and that strand gets
    :class:`plait.BrokenResourceError` naming the dead pid; later ones proceed as usual.
    """

    __slots__ = ()
    _shared: SharedState
    _initial: int
    _mutex: Any
    _queue: WaitQueue

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        wait = 0.0 if not blocking or not _will_wait(timeout) else timeout
        state = self._shared
        if sem_wait(
            state, state.sems[0], self, wait, self._check, state.took_permit, state.give_permit
        ):
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

    def _check(self) -> bool:
        return repair_permits(self._shared, "semaphore")

    @property
    def _value(self) -> int:
        """The permits free now, in every process (not this process's old copy)."""
        state: SharedState | None = getattr(self, "_shared", None)
        if state is None:  # (being built by ``_rebuild``)
            return int(_VALUE_SLOT.__get__(self))
        return int(state.sems[0]._get_value())

    @_value.setter
    def _value(self, value: int) -> None:
        _VALUE_SLOT.__set__(self, value)  # only ever the initial value, while being built

    def _try_sync(self, blocking: bool, timeout: float | None) -> Any:
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
        gate = bridge(self, check=self._check, took=state.took_permit, untake=state.give_permit)
        if await gate.wait(wait):
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

    def _add(self, n: int, bounded: bool = False) -> None:
        state = self._shared
        if bounded and state.sems[0]._get_value() + n > self._initial:
            raise ValueError("Semaphore released too many times")
        try:
            state.give_permits(n)
        except ValueError:
            raise ValueError("Semaphore released too many times") from None

    def _give_back(self, _value: object) -> None:
        self._add(1)

    def locked(self) -> bool:
        return bool(self._shared.sems[0]._get_value() == 0)

    def __aenter__(self) -> Awaitable[Any]:
        return self._async_acquire(True, None)

    def statistics(self) -> SemaphoreStatistics:
        waiting, by_kind = _waiting(self)
        return SemaphoreStatistics(
            value=int(self._shared.sems[0]._get_value()),
            initial_value=self._initial,
            waiting=waiting,
            waiting_by_kind=by_kind,
        )

    def __repr__(self) -> str:
        value = int(self._shared.sems[0]._get_value())
        return f"<plait.{type(self).__name__} at {id(self):#x}: value={value}, shared>"

    def __reduce__(self) -> tuple[Any, ...]:
        kind = "bsem" if isinstance(self, BoundedSemaphore) else "sem"
        return (_rebuild, (kind, self._shared.prefix, self._initial))


class SharedSemaphore(_SharedSemaphoreBase, Semaphore):
    """A promoted :class:`plait.Semaphore`."""

    __slots__ = ()


class SharedBoundedSemaphore(_SharedSemaphoreBase, BoundedSemaphore):
    """A promoted :class:`plait.BoundedSemaphore` (its maximum is enforced by the OS)."""

    __slots__ = ()


class SharedEvent(Event):
    """A promoted :class:`plait.Event`: flag and generation in named semaphores.

    ``set``/``clear`` change them under a shared mutex whose holder is recorded: a
    process that died inside one is repaired silently (its change was one step).
    """

    __slots__ = ()

    def is_set(self) -> bool:
        return bool(self._shared.sems[1]._get_value() == 1)

    def _lock_mutex(self) -> None:
        state = self._shared
        sem_wait(state, state.sems[0], self, None, self._repair, state.took_mutex)

    def _repair(self) -> bool:
        return repair_owner(self._shared, "event", report=False)

    def set(self) -> None:
        _mutex, flag, gen = self._shared.sems
        safepoint.enter()  # (the mutex is taken inside: no cancellation lands in between)
        try:
            self._lock_mutex()
            try:
                if flag._get_value() == 0:
                    flag.release()
                    if gen._get_value() >= SEM_MAX - 1:
                        gen.acquire(False)  # keep the counter changing without overflow
                        gen.acquire(False)
                    gen.release()
            finally:
                self._shared.give_mutex()
        finally:
            safepoint.leave()

    def clear(self) -> None:
        _mutex, flag, _gen = self._shared.sems
        safepoint.enter()
        try:
            self._lock_mutex()
            try:
                flag.acquire(False)
            finally:
                self._shared.give_mutex()
        finally:
            safepoint.leave()

    def _signalled(self, gen0: int) -> bool:
        _mutex, flag, gen = self._shared.sems
        return bool(flag._get_value() == 1 or gen._get_value() != gen0)

    # Waiting: a strand parks through the kernel (``park``/``async_park``: its state and
    # the park/unpark hooks are the kernel's business) in the event's local queue, its
    # generation noted; one watcher thread per process polls the shared flag while anyone
    # waits and wakes each waiter that the flag or a newer generation concerns.

    def wait(self, timeout: float | None = None) -> bool:
        gen0 = self._shared.sems[2]._get_value()
        if self._signalled(gen0):
            return True
        if timeout is not None and not timeout > 0:
            return False
        with self._mutex:
            waiter = self._queue.enqueue_current(self, gen0)
            self._watch()
        return bool(park(waiter, timeout)) or self._signalled(gen0)

    def async_wait(self, timeout: float | None = None) -> Coroutine[Any, Any, bool]:
        return self._async_wait(timeout)

    async def _async_wait(self, timeout: float | None) -> bool:
        gen0 = self._shared.sems[2]._get_value()
        if self._signalled(gen0):
            return True
        if timeout is not None and not timeout > 0:
            return False
        with self._mutex:
            waiter = self._queue.async_enqueue_current(self, gen0)
            self._watch()
        return bool(await async_park(waiter, timeout)) or self._signalled(gen0)

    def _watch(self) -> None:
        """Start this process's watcher if it is not running (call with the mutex held)."""
        state = self._shared
        if not state.watching:
            state.watching = True
            threading.Thread(
                target=self._watcher, name=f"plait-event-{state.prefix}", daemon=True
            ).start()

    def _watcher(self) -> None:
        state = self._shared
        _mutex, flag, gen = state.sems
        pause = _POLL_MIN
        while True:
            is_set = flag._get_value() == 1
            now = gen._get_value()
            woken = []
            with self._mutex:
                for waiter in list(self._queue):
                    if is_set or waiter.data != now:
                        self._queue.remove(waiter, WOKEN)
                        woken.append(waiter)
                if not self._queue:
                    state.watching = False
            for waiter in woken:
                waiter.wake()
            if not state.watching:
                return
            pause = _POLL_MIN if woken else min(pause * 2, _POLL_MAX)
            time.sleep(pause)

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
    """Move ``obj``'s state into named semaphores and swap in its shared class."""
    woken = []
    with obj._mutex:
        state: SharedState | None = obj._shared
        if state is not None:
            return state
        if isinstance(obj, Lock | RLock):
            # A local holder keeps holding: the semaphore starts taken and its release
            # (through either class: ``_inner`` is swapped too) frees it.
            free = obj._inner.acquire(False)  # if free, the old lock stays taken for good
            state = SharedState.create("mutex", [(1 if free else 0, 1)])
            if not free:  # held here: this process is its recorded holder
                state.took_mutex()
            obj._owed = not free  # a release in flight on the old lock must pay it here
            obj._inner = state.sems[0]
            new_cls: type = SharedLock if isinstance(obj, Lock) else SharedRLock
        elif isinstance(obj, Semaphore):
            bounded = isinstance(obj, BoundedSemaphore)
            maxvalue = obj._initial if bounded else SEM_MAX
            state = SharedState.create("permits", [(obj._value, max(maxvalue, 1))])
            state.initial = obj._initial
            out = obj._initial - obj._value
            if out > 0:  # permits held by strands of this process
                state.record.add(state.record.slot(), out)
            new_cls = SharedBoundedSemaphore if bounded else SharedSemaphore
        elif isinstance(obj, Event):
            flag = 1 if obj._flag else 0
            state = SharedState.create("mutex", [(1, 1), (flag, 1), (0, SEM_MAX)])
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
    if kind == "lock":
        state = SharedState.open(prefix, [1], "plait.Lock", "mutex")
        obj = Lock.__new__(SharedLock)
        Lock.__init__(obj)
        obj._inner = state.sems[0]
    elif kind == "rlock":
        state = SharedState.open(prefix, [1], "plait.RLock", "mutex")
        obj = RLock.__new__(SharedRLock)
        RLock.__init__(obj)
        obj._inner = state.sems[0]
    elif kind in ("sem", "bsem"):
        maxvalue = max(initial, 1) if kind == "bsem" else SEM_MAX
        state = SharedState.open(prefix, [maxvalue], "plait.Semaphore", "permits")
        state.initial = initial
        cls: Any = SharedBoundedSemaphore if kind == "bsem" else SharedSemaphore
        obj = Semaphore.__new__(cls)
        Semaphore.__init__(obj, initial)
    else:
        state = SharedState.open(prefix, [1, 1, SEM_MAX], "plait.Event", "mutex")
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
