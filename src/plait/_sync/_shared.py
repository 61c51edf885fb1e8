"""The shared (promoted) classes, and promotion itself: see ``_xproc`` for the design.

Each class here is the cross-process form of a primitive, with the same API; an object
becomes one when its ``__reduce__`` first runs (``obj.__class__`` is swapped in place), or
is built as one when a process unpickles it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Coroutine
from types import MappingProxyType, TracebackType
from typing import Any

from plait._core import WaitQueue, checkpoint, current_strand, hooks
from plait._sync._barrier import Barrier
from plait._sync._common import MIGRATED, READY, check_lock_args, waiting_by_kind
from plait._sync._condition import Condition
from plait._sync._event import Event
from plait._sync._lock import Lock
from plait._sync._rlock import RLock
from plait._sync._semaphore import BoundedSemaphore, Semaphore, _will_wait
from plait._sync._stats import (
    ConditionStatistics,
    EventStatistics,
    LockStatistics,
    SemaphoreStatistics,
)
from plait._sync._xproc import SEM_MAX, SharedState, bridge, sem_wait

__all__ = [
    "SharedBarrier",
    "SharedBoundedSemaphore",
    "SharedCondition",
    "SharedEvent",
    "SharedLock",
    "SharedRLock",
    "SharedSemaphore",
    "not_shareable",
    "promote",
    "promote_barrier",
    "promote_condition",
]

_ACK_LIMIT = 5.0  # how long notify waits for a woken waiter that may have died

_POLL_MIN, _POLL_MAX = 0.00005, 0.005
_monotonic = time.monotonic

# Shared primitives known in this process by name prefix, so unpickling one that is
# already here (sent back by a child) returns the very same object.
_known: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_known_lock = threading.Lock()


# -- the shared classes -----------------------------------------------------------------


class SharedLock(Lock):
    """A promoted :class:`plait.Lock`: the same API over one named semaphore."""

    __slots__ = ()

    # ``_inner`` *is* the named semaphore now, so the base class's lock-free fast paths
    # (and any call that was half-way through one when the lock was promoted) take and
    # free the shared lock itself.

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking is True and timeout == -1:
            if self._inner.acquire(False):
                if hooks.active:
                    hooks.acquired(current_strand(), self)
                return True
            return self._acquire_slow(current_strand(), None)
        return self._acquire_slow(current_strand(), check_lock_args(blocking, timeout))

    def _acquire_slow(self, me: Any, wait: float | None) -> bool:
        if sem_wait(self._shared, self._inner, self, wait):
            if hooks.active:
                hooks.acquired(me, self)
            return True
        return False

    def release(self) -> None:
        if hooks.active:
            hooks.released(current_strand(), self)
        try:
            self._inner.release()
        except ValueError:
            raise RuntimeError("release unlocked lock") from None

    def _pass_on(self) -> None:
        self.release()

    def _after_free(self) -> None:
        pass  # a release that began before promotion freed the semaphore already

    def __enter__(self) -> bool:
        if self._inner.acquire(False):
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
        if await bridge(self).wait(wait):
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
        while not self._acquire_slow(me, None):
            pass

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


class SharedRLock(RLock):
    """A promoted :class:`plait.RLock`: one named semaphore, the owner kept per process.

    Only the owner ever sets the owner, so each process keeps the owner strand and depth
    locally (a strand of another process never matches); the semaphore says whether *some*
    strand, anywhere, holds the lock.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        wait = None if blocking is True and timeout == -1 else check_lock_args(blocking, timeout)
        me = current_strand()
        if self._owner is me:
            self._count += 1
            return True
        if self._inner.acquire(False):
            self._took(me)
            return True
        return self._acquire_slow(me, wait)

    __enter__ = acquire

    def _acquire_slow(self, me: Any, wait: float | None) -> bool:
        if sem_wait(self._shared, self._inner, self, wait):
            self._took(me)
            return True
        return False

    async def _async_acquire(self, me: Any, wait: float | None) -> bool:
        if self._owner is me:
            self._count += 1
            return True
        if self._inner.acquire(False):
            self._took(me)
            return True
        return await self._async_acquire_slow(me, wait)

    async def _async_acquire_slow(self, me: Any, wait: float | None) -> bool:
        if await bridge(self).wait(wait):
            self._took(me)
            return True
        return False

    def _pass_on(self) -> None:
        self._owner = None
        self._count = 0
        self._inner.release()

    def _after_free(self) -> None:
        pass  # a release that began before promotion freed the semaphore already

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


def _waiting(obj: Any) -> tuple[int, Any]:
    """Waiters of this process: coroutines in the local queue, strands blocked in the OS."""
    with obj._mutex:
        counts = dict(waiting_by_kind(obj._queue))
    state: SharedState = obj._shared
    with state._guard:
        for kind, n in state.blocked.items():
            counts[kind] = counts.get(kind, 0) + n
    return sum(counts.values()), MappingProxyType(counts)


class _SharedSemaphoreBase:
    """The promoted form of a semaphore: permits live in one named semaphore."""

    __slots__ = ()
    _shared: SharedState
    _initial: int
    _mutex: Any
    _queue: WaitQueue

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        wait = 0.0 if not blocking or not _will_wait(timeout) else timeout
        if sem_wait(self._shared, self._shared.sems[0], self, wait):
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

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
        if await bridge(self).wait(wait):
            if hooks.active:
                hooks.acquired(current_strand(), self)
            return True
        return False

    def _add(self, n: int, bounded: bool = False) -> None:
        sem = self._shared.sems[0]
        if bounded and sem._get_value() + n > self._initial:
            raise ValueError("Semaphore released too many times")
        for _ in range(n):
            try:
                sem.release()
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
    """A promoted :class:`plait.Event`: flag and generation in named semaphores."""

    __slots__ = ()

    def is_set(self) -> bool:
        return bool(self._shared.sems[1]._get_value() == 1)

    def set(self) -> None:
        mutex, flag, gen = self._shared.sems
        mutex.acquire()
        try:
            if flag._get_value() == 0:
                flag.release()
                if gen._get_value() >= SEM_MAX - 1:
                    gen.acquire(False)  # keep the counter changing without overflow
                    gen.acquire(False)
                gen.release()
        finally:
            mutex.release()

    def clear(self) -> None:
        mutex, flag, _gen = self._shared.sems
        mutex.acquire()
        try:
            flag.acquire(False)
        finally:
            mutex.release()

    def _signalled(self, gen0: int) -> bool:
        _mutex, flag, gen = self._shared.sems
        return bool(flag._get_value() == 1 or gen._get_value() != gen0)

    def wait(self, timeout: float | None = None) -> bool:
        gen0 = self._shared.sems[2]._get_value()
        if self._signalled(gen0):
            return True
        if timeout is not None and not timeout > 0:
            return False
        deadline = None if timeout is None else _monotonic() + timeout
        strand = current_strand()
        strand.state, strand.parked_on = "parked", self
        self._shared.enter(strand.kind)
        pause = _POLL_MIN
        try:
            while not self._signalled(gen0):
                if strand.cancel_scopes:
                    checkpoint()
                if deadline is not None and _monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, _POLL_MAX)
            return True
        finally:
            strand.state, strand.parked_on = "running", None
            self._shared.leave(strand.kind)

    def async_wait(self, timeout: float | None = None) -> Coroutine[Any, Any, bool]:
        return self._async_wait(timeout)

    async def _async_wait(self, timeout: float | None) -> bool:
        gen0 = self._shared.sems[2]._get_value()
        if self._signalled(gen0):
            return True
        if timeout is not None and not timeout > 0:
            return False
        deadline = None if timeout is None else _monotonic() + timeout
        strand = current_strand()
        strand.state, strand.parked_on = "parked", self
        self._shared.enter(strand.kind)
        pause = _POLL_MIN
        try:
            while not self._signalled(gen0):
                if deadline is not None and _monotonic() >= deadline:
                    return False
                await asyncio.sleep(pause)
                pause = min(pause * 2, _POLL_MAX)
            return True
        finally:
            strand.state, strand.parked_on = "running", None
            self._shared.leave(strand.kind)

    def statistics(self) -> EventStatistics:
        waiting, by_kind = _waiting(self)
        return EventStatistics(is_set=self.is_set(), waiting=waiting, waiting_by_kind=by_kind)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("event", self._shared.prefix))

    def __repr__(self) -> str:
        status = "set" if self.is_set() else "unset"
        return f"<plait.Event at {id(self):#x}: {status}, shared>"


class SharedCondition(Condition):
    """A promoted :class:`plait.Condition` over a shared lock.

    Three semaphores: ``sleepers`` (waiters that announced themselves, under the lock),
    ``wake`` (one post per notified waiter) and ``acks``. ``notify(n)`` takes up to ``n``
    announcements, posts that many wakes and, still holding the lock, waits until each
    was taken, so a waiter that arrives later cannot take a wake meant for an earlier
    one. A waiter that times out takes its announcement back; if a notify took it first,
    the wake is owed to it, and it takes that instead (and returns ``True``: notified).
    Coroutines take wakes through the bridge thread, which acks for them, so a notify
    made on their own loop never waits for them to run.
    """

    _shared: SharedState

    def wait(self, timeout: float | None = None) -> bool:
        me = current_strand()
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = None if timeout is None else (timeout if timeout > 0 else 0.0)
        sleepers, wake, acks = self._shared.sems
        sleepers.release()  # announce, while holding the lock
        saved = self._release_save(me)
        pass_on = False
        try:
            try:
                got = sem_wait(self._shared, wake, self, wait)
            except BaseException:
                pass_on = self._withdraw()  # notified, but cancelled: hand it on below
                raise
            if got:
                acks.release()
                return True
            return self._withdraw()
        finally:
            self._acquire_restore(saved, me)
            if pass_on:
                self._notify(1)

    def _withdraw(self) -> bool:
        """Take the announcement back; ``True`` if a notify had counted us already."""
        sleepers, wake, acks = self._shared.sems
        if sleepers.acquire(False):
            return False
        wake.acquire()  # the notifier posts it right after taking our announcement
        acks.release()
        return True

    async def _async_wait(self, me: Any, timeout: float | None) -> bool:
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = None if timeout is None else (timeout if timeout > 0 else 0.0)
        gate = bridge(self, index=1, ack=2)
        handed: list[object] = []
        cancel: BaseException | None = None
        self._shared.sems[0].release()  # announce, while holding the lock
        saved = self._release_save(me)
        try:
            notified = bool(await gate.wait(wait, handed.append))
        except BaseException as exc:  # cancelled; maybe after it was handed a wake
            cancel = exc
            notified = bool(handed)
        if not notified:
            notified, again = await self._async_withdraw(gate)
            cancel = cancel or again
        while True:  # re-take the lock whatever happens, as asyncio.Condition does
            try:
                await self._lock._plait_async_acquire_restore(saved, me)
                break
            except BaseException as exc:
                cancel = cancel or exc
        if cancel is not None:
            if notified:
                self._notify(1)  # notified, but cancelled: the notification goes on
            raise cancel
        return notified

    async def _async_withdraw(self, gate: Any) -> tuple[bool, BaseException | None]:
        """Withdraw (see :meth:`_withdraw`); a cancel cannot interrupt it, only be noted."""
        if self._shared.sems[0].acquire(False):
            return False, None
        got: list[object] = []
        cancel: BaseException | None = None
        while True:
            try:
                await gate.wait(None, got.append)
                return True, cancel
            except BaseException as exc:
                cancel = exc
                if got:
                    return True, cancel

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._notify(n)

    def _notify(self, n: int) -> None:
        sleepers, wake, acks = self._shared.sems
        woken = 0
        while woken < n and sleepers.acquire(False):
            wake.release()
            woken += 1
        for _ in range(woken):
            if not acks.acquire(True, _ACK_LIMIT):
                break  # a waiter that announced itself has died; do not hang on it

    def notify_all(self) -> None:
        self.notify(SEM_MAX)

    def statistics(self) -> ConditionStatistics:
        waiting, by_kind = _waiting(self)
        return ConditionStatistics(
            waiting=waiting, waiting_by_kind=by_kind, lock=self._lock.statistics()
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_condition, (self._lock, self._shared.prefix))

    def __repr__(self) -> str:
        return f"<plait.Condition({self._lock!r}) shared={self._shared.prefix!r}>"


def promote_condition(cond: Condition) -> tuple[Any, ...]:
    """Share ``cond`` and its lock; return what pickles it."""
    if not cond._plait:
        raise TypeError(
            f"a plait.Condition over {cond._lock!r} cannot be shared with another process: "
            "give it a plait.Lock or plait.RLock"
        )
    promote(cond._lock)
    woken = []
    with cond._mutex:
        if cond._shared is None:
            state = SharedState.create("cv", [(0, SEM_MAX), (0, SEM_MAX), (0, SEM_MAX)])
            cond._shared = state
            cond.__class__ = SharedCondition
            # Local waiters wake up (a spurious wake-up, which wait_for absorbs) and
            # from then on wait on the shared semaphores.
            woken = cond._queue.pop_all(MIGRATED)
            with _known_lock:
                _known[state.prefix] = cond
    for waiter in woken:
        waiter.wake()
    return cond.__reduce__()


def _rebuild_condition(lock: Any, prefix: str) -> Any:
    with _known_lock:
        obj = _known.get(prefix)
        if obj is not None:
            return obj
    state = SharedState.open(prefix, [SEM_MAX, SEM_MAX, SEM_MAX], "plait.Condition")
    cond = SharedCondition.__new__(SharedCondition)
    Condition.__init__(cond, lock)
    cond._shared = state
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:
            return known
        _known[prefix] = cond
    return cond


def _set_value(sem: Any, value: int) -> None:
    """Move ``sem`` to exactly ``value`` (only ever done under the owner's shared lock)."""
    current = sem._get_value()
    while current < value:
        sem.release()
        current += 1
    while current > value and sem.acquire(False):
        current -= 1


class SharedBarrier(Barrier):
    """A promoted :class:`plait.Barrier`: its count and phase live in two semaphores.

    The barrier's state machine is unchanged: it reads and writes ``_count`` and
    ``_state`` only while holding its (shared) condition's lock, and here those two
    attributes are the semaphores' values.
    """

    _shared: SharedState

    @property
    def _count(self) -> int:
        return int(self._shared.sems[0]._get_value())

    @_count.setter
    def _count(self, value: int) -> None:
        _set_value(self._shared.sems[0], value)

    @property
    def _state(self) -> int:
        return int(self._shared.sems[1]._get_value()) - 2

    @_state.setter
    def _state(self, value: int) -> None:
        _set_value(self._shared.sems[1], value + 2)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_barrier,
            (self._parties, self._action, self._timeout, self._cond, self._shared.prefix),
        )


def promote_barrier(barrier: Barrier) -> tuple[Any, ...]:
    """Share ``barrier`` (its condition and lock too); return what pickles it."""
    if barrier._shared is None:
        with barrier._cond:
            if barrier._shared is None:
                count, phase = barrier._count, barrier._state
                state = SharedState.create("br", [(count, SEM_MAX), (phase + 2, 3)])
                barrier.__dict__.pop("_count", None)
                barrier.__dict__.pop("_state", None)
                barrier._shared = state
                barrier.__class__ = SharedBarrier
                with _known_lock:
                    _known[state.prefix] = barrier
            promote_condition(barrier._cond)
    return barrier.__reduce__()


def _rebuild_barrier(
    parties: int, action: Any, timeout: float | None, cond: Any, prefix: str
) -> Any:
    with _known_lock:
        obj = _known.get(prefix)
        if obj is not None:
            return obj
    state = SharedState.open(prefix, [SEM_MAX, 3], "plait.Barrier")
    barrier = SharedBarrier.__new__(SharedBarrier)
    barrier.__dict__.update(
        _cond=cond, _parties=parties, _action=action, _timeout=timeout, _shared=state
    )
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:
            return known
        _known[prefix] = barrier
    return barrier


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
            state = SharedState.create("lk", [(1 if free else 0, 1)])
            obj._inner = state.sems[0]
            new_cls: type = SharedLock if isinstance(obj, Lock) else SharedRLock
        elif isinstance(obj, Semaphore):
            bounded = isinstance(obj, BoundedSemaphore)
            maxvalue = obj._initial if bounded else SEM_MAX
            state = SharedState.create("sm", [(obj._value, max(maxvalue, 1))])
            new_cls = SharedBoundedSemaphore if bounded else SharedSemaphore
        elif isinstance(obj, Event):
            flag = 1 if obj._flag else 0
            state = SharedState.create("ev", [(1, 1), (flag, 1), (0, SEM_MAX)])
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
        state = SharedState.open(prefix, [1], "plait.Lock")
        obj = Lock.__new__(SharedLock)
        Lock.__init__(obj)
        obj._inner = state.sems[0]
    elif kind == "rlock":
        state = SharedState.open(prefix, [1], "plait.RLock")
        obj = RLock.__new__(SharedRLock)
        RLock.__init__(obj)
        obj._inner = state.sems[0]
    elif kind in ("sem", "bsem"):
        maxvalue = max(initial, 1) if kind == "bsem" else SEM_MAX
        state = SharedState.open(prefix, [maxvalue], "plait.Semaphore")
        cls: Any = SharedBoundedSemaphore if kind == "bsem" else SharedSemaphore
        obj = Semaphore.__new__(cls)
        Semaphore.__init__(obj, initial)
    else:
        state = SharedState.open(prefix, [1, 1, SEM_MAX], "plait.Event")
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
