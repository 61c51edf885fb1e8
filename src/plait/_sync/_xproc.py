"""Primitives across processes: promote-on-pickle to named POSIX semaphores.

A ``Lock``, ``Semaphore``, ``BoundedSemaphore`` or ``Event`` lives in its process until it
is first pickled -- passed to a process at spawn, or later through a queue or pipe to a
worker that already runs. Then it is *promoted*: its state moves into named semaphores
(``/dev/shm/sem.plait_*``), its class becomes the shared variant (``obj.__class__`` is
swapped, so objects that are never shared keep the lean in-process fast paths), and local
strands parked on it are woken to wait again on the shared state. Every process then uses
the same semaphores::

    Lock               one semaphore, max 1 (1 = free)
    Semaphore          one semaphore (the permits); BoundedSemaphore: max = initial value
    Event              mutex (max 1), flag (0/1), generation (counts set() calls)

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
hang. ``RLock``, ``Condition``, ``Barrier`` and ``CapacityLimiter`` do not cross processes
yet: pickling one raises ``TypeError`` at that call.
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]
import asyncio
import os
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Coroutine
from multiprocessing import resource_tracker
from types import TracebackType
from typing import Any

from plait._core import WaitQueue, async_park, checkpoint, current_strand, hooks
from plait._errors import BrokenResourceError
from plait._sync._common import MIGRATED, READY, check_lock_args
from plait._sync._event import Event
from plait._sync._lock import Lock
from plait._sync._semaphore import BoundedSemaphore, Semaphore, _will_wait
from plait._sync._stats import EventStatistics, LockStatistics, SemaphoreStatistics

__all__ = ["SharedState", "not_shareable", "promote"]

_SEMAPHORE = 1
SEM_MAX: int = _multiprocessing.SemLock.SEM_VALUE_MAX
_SLICE = 0.05
_POLL_MIN, _POLL_MAX = 0.00005, 0.005
_monotonic = time.monotonic
_EMPTY: Any = {}
SHM_DIR = "/dev/shm"

# Shared primitives known in this process by name prefix, so unpickling one that is
# already here (sent back by a child) returns the very same object.
_known: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_known_lock = threading.Lock()


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _home_pid(prefix: str) -> int:
    """The home process's pid, written into every name: ``plait_sync_<kind>_<pid>_<hex>_``."""
    return int(prefix.split("_")[3])


def _peer_cleanup(names: tuple[str, ...], home_pid: int) -> None:
    """A participant lets go: if the home process died without cleaning up, clean up."""
    if not _alive(home_pid):
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
        if len(parts) == 6 and parts[3].isdigit() and not _alive(int(parts[3])):
            _unlink(("/" + entry[4:],))


class SharedState:
    """The named semaphores behind one promoted primitive, plus its coroutine bridge."""

    __slots__ = ("__weakref__", "bridge", "finalizer", "prefix", "sems")

    def __init__(self, prefix: str, sems: list[Any], *, home: bool) -> None:
        self.prefix = prefix
        self.sems = sems
        self.bridge: _Bridge | None = None
        names = tuple(f"/{prefix}{i}" for i in range(len(sems)))
        if home:
            self.finalizer = weakref.finalize(self, _unlink_all, names, os.getpid())
        else:
            self.finalizer = weakref.finalize(self, _peer_cleanup, names, _home_pid(prefix))

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


def _sem_wait(state: SharedState, sem: Any, on: object, wait: float | None) -> bool:
    """Take one unit of ``sem`` from a thread; ``wait`` None = forever, 0 = try once."""
    if sem.acquire(False):
        return True
    if wait == 0:
        return False
    strand = current_strand()
    deadline = None if wait is None else _monotonic() + wait
    strand.state = "parked"
    strand.parked_on = on
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
        if hooks.active:
            hooks.unparked(strand, on, outcome)


class _Bridge:
    """One helper thread per shared primitive per process, taking units for coroutines.

    Coroutines wait in the primitive's local queue (FIFO); the helper blocks on the
    semaphore and hands each unit it takes to the first waiter, or gives it back if
    nobody waits any more.
    """

    __slots__ = ("obj", "running", "sem", "state")

    def __init__(self, obj: Any, state: SharedState, sem: Any) -> None:
        self.obj = obj
        self.state = state
        self.sem = sem
        self.running = False

    async def wait(self, wait: float | None) -> bool:
        sem = self.sem
        if sem.acquire(False):
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
        return await async_park(waiter, wait, self._give_back)

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
                    waiter.wake()


def _bridge(obj: Any) -> _Bridge:
    state: SharedState = obj._shared
    bridge = state.bridge
    if bridge is None:
        bridge = state.bridge = _Bridge(obj, state, state.sems[0])
    return bridge


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
        if _sem_wait(self._shared, self._inner, self, wait):
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
        if await _bridge(self).wait(wait):
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
        with self._mutex:
            waiting = len(self._queue)
        locked = self.locked()
        return LockStatistics(
            locked=locked,
            owner=None,
            count=int(locked),
            waiting=waiting,
            waiting_by_kind=_kinds(self),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("lock", self._shared.prefix))

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} plait.Lock object shared={self._shared.prefix!r} at {id(self):#x}>"


def _kinds(obj: Any) -> Any:
    from plait._sync._common import waiting_by_kind

    with obj._mutex:
        return waiting_by_kind(obj._queue)


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
        if _sem_wait(self._shared, self._shared.sems[0], self, wait):
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
        if await _bridge(self).wait(wait):
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
        with self._mutex:
            waiting = len(self._queue)
        return SemaphoreStatistics(
            value=int(self._shared.sems[0]._get_value()),
            initial_value=self._initial,
            waiting=waiting,
            waiting_by_kind=_kinds(self),
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

    def statistics(self) -> EventStatistics:
        return EventStatistics(is_set=self.is_set(), waiting=0, waiting_by_kind=_EMPTY)

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
        if isinstance(obj, Lock):
            # A local holder keeps holding: the semaphore starts taken and its release
            # (through either class: ``_inner`` is swapped too) frees it.
            free = obj._inner.acquire(False)  # if free, the old lock stays taken for good
            state = SharedState.create("lk", [(1 if free else 0, 1)])
            obj._inner = state.sems[0]
            new_cls: type = SharedLock
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
        f"a plait.{name} cannot be shared with another process (only Lock, Semaphore, "
        f"BoundedSemaphore and Event can); create the {name} in the process that uses it"
    )
