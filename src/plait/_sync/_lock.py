"""``Lock``: threading's lock, usable from threads and from coroutines on any loop at once.

The lock's state is a private ``_thread`` lock (``_inner``): taking it with a non-blocking
acquire is the whole uncontended fast path, so ``with lock:`` costs little more than the
stdlib's. The primitive's mutex and wait queue are touched only when someone must wait.

Hand-off keeps FIFO fairness across strand kinds: a release that finds waiters does not
free ``_inner``; it passes the held lock to the first waiter, so a newcomer's fast path
cannot barge ahead of the queue. Two rules close the lost-wakeup race between the
lock-free fast paths and the queue:

* a waiter enqueues *before* its final try-acquire (both under the mutex), and
* a releaser frees ``_inner`` *before* it looks at the queue a second time; if a waiter
  arrived in between, it re-takes ``_inner`` under the mutex and hands it over.

With the C accelerator (``plait/_fastlock.c``), ``Lock``'s acquire/release/``with``/
``async with``/``async_acquire`` finish in C when the lock is local, free and nobody waits,
and otherwise call the Python methods below, which stay the reference implementation (and
the whole implementation without it, or with ``PLAIT_NO_SPEEDUPS=1``).

Ownership belongs to a strand. ``async_acquire()`` records its caller when it is *called*,
not when its coroutine first runs, so ``asyncio.wait_for(lock.async_acquire(), t)`` (which
on Python 3.11 runs the coroutine in a new task) still gives the lock to the caller.
"""

from __future__ import annotations

import time
from _thread import allocate_lock
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

from plait._core import Strand, WaitQueue, async_park, current_strand, hooks, new_mutex, park
from plait._core.strands import FASTLOCK, thread_key, thread_strand_of
from plait._sync._common import MIGRATED, READY, check_lock_args, time_left, waiting_by_kind
from plait._sync._stats import LockStatistics

__all__ = ["Lock"]

SPEEDUPS = FASTLOCK is not None  # whether Lock's fast paths run in C


class _PyLockBase:
    """The base of the locks without the C accelerator: the fields ``LockCore`` keeps in C."""

    __slots__ = ("_inner", "_owner", "_owner_context", "_owner_ident", "_queue")


if TYPE_CHECKING:
    _LockBase = _PyLockBase
else:
    _LockBase = FASTLOCK.LockCore if FASTLOCK is not None else _PyLockBase
_new_inner: Any = FASTLOCK.Inner if FASTLOCK is not None else allocate_lock


class _LockCore(_LockBase):
    """The parts ``Lock`` and ``RLock`` share: state, queue, slow paths and hand-off.

    The owner is ``_owner`` (a strand) when known; a fast path that knows only its thread
    records the thread's key (``_owner_ident``, see ``strands.thread_key``) instead, which
    :meth:`_holder` resolves when someone asks.
    """

    __slots__ = ("__weakref__", "_count", "_mutex", "_owed", "_shared")

    _inner: Any
    _owner: Strand | None
    _owner_context: int
    _owner_ident: int
    _queue: WaitQueue
    _count: int
    _reentrant = False
    # Its backend once shared (``_shared``; the seam: ``plait._ipc.promotion``).
    _backend_kind = "lock"
    _backend_home = "plait._sync._shared"

    def __init__(self) -> None:
        self._inner = _new_inner()
        self._owed = False  # promotion found it held: the holder's release owes one
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)
        self._owner = None
        self._owner_ident = 0
        self._owner_context = 0  # (the C fast path's taker context: see strands.green_owner)
        self._count = 0
        # The backend once shared with processes (``_sync._shared.LockBackend``, which is
        # ``_inner`` too): ``None`` while local.
        self._shared: Any = None

    def _holder(self) -> Strand | None:
        """The strand holding the lock, when plait can tell (for diagnostics).

        The owner strand if it was recorded, else the strand of the thread that took the
        lock on a fast path (which records only the thread's key: cheaper than finding
        the strand), else ``None`` (not held, or held by a thread plait does not know).
        """
        if not self._inner.locked():
            return None
        owner = self._owner
        if owner is not None:
            return owner
        key = self._owner_ident
        return thread_strand_of(key, self._owner_context) if key else None

    # -- taking the lock ---------------------------------------------------------------

    def _took(self, me: Strand) -> None:
        """Record ``me`` as the owner of the just-taken ``_inner``."""
        self._owner = me
        self._count = 1
        if hooks.active:
            hooks.acquired(me, self)

    def _acquire_slow(self, me: Strand, wait: float | None) -> bool:
        """Queue up (enqueue first, then the final try), then park; ``wait=0`` tries once."""
        if self._shared is not None:
            return self._acquire_shared(me, wait)
        if wait == 0.0:
            if self._inner.acquire(False):
                self._took(me)
                return True
            return False
        with self._mutex:
            shared = self._shared is not None
            if not shared:
                waiter = self._queue.enqueue_current(self, me)
                got = bool(self._inner.acquire(False))
                if got:
                    self._queue.remove(waiter)
        if shared:  # promoted meanwhile: wait on the shared state
            return self._acquire_shared(me, wait)
        started = time.monotonic() if wait is not None else 0.0
        if got or park(waiter, wait, self._undo):
            if waiter.value is MIGRATED:
                return bool(self._acquire_slow(me, time_left(wait, started)))
            if got:
                self._owner = me
                self._count = 1
            if hooks.active:
                hooks.acquired(me, self)
            return True
        return False

    async def _async_acquire_slow(self, me: Strand, wait: float | None) -> bool:
        if self._shared is not None:
            return await self._async_acquire_shared(me, wait)
        if wait == 0.0:
            if self._inner.acquire(False):
                self._took(me)
                return True
            return False
        with self._mutex:
            shared = self._shared is not None
            if not shared:
                waiter = self._queue.async_enqueue_current(self, me)
                got = bool(self._inner.acquire(False))
                if got:
                    self._queue.remove(waiter)
        if shared:  # promoted meanwhile: wait on the shared state
            return await self._async_acquire_shared(me, wait)
        started = time.monotonic() if wait is not None else 0.0
        if got or await async_park(waiter, wait, self._undo):
            if waiter.value is MIGRATED:
                return bool(await self._async_acquire_slow(me, time_left(wait, started)))
            if got:
                self._owner = me
                self._count = 1
            if hooks.active:
                hooks.acquired(me, self)
            return True
        return False

    # -- shared with processes: the waits go to the backend -------------------------------

    def _acquire_shared(self, me: Strand, wait: float | None) -> bool:
        if not self._shared.take(self, wait):
            return False
        self._took(me)  # (which strand of this process holds it: for diagnostics)
        return True

    async def _async_acquire_shared(self, me: Strand, wait: float | None) -> bool:
        if not await self._shared.async_take(self, wait):
            return False
        self._took(me)
        return True

    def _restore_shared(self, me: Strand) -> None:
        """Re-take the shared lock after a condition wait, whatever happens."""
        self._shared.take_anyway(self)
        self._took(me)

    def _undo(self, _value: object) -> None:
        """A coroutine handed the lock was cancelled: pass the lock on, unseen."""
        self._pass_on()

    # -- giving it back ----------------------------------------------------------------

    def _pass_on(self) -> None:
        """Free the lock held by the owner that is leaving, or hand it to the next waiter."""
        if self._queue._count == 0:  # unlocked read; the re-check below closes the race
            self._owner = None
            self._owner_ident = 0
            self._count = 0
            inner = self._inner
            inner.release()
            if inner is not self._inner:  # promoted while we released the old lock
                self._settle_promotion()
            if self._queue._count:
                self._after_free()
            return
        with self._mutex:
            if not self._inner.locked():
                raise RuntimeError("release unlocked lock")
            waiter = self._queue.pop()
            if waiter is None:
                self._owner = None
                self._owner_ident = 0
                self._count = 0
                self._inner.release()
                return
            self._owner = waiter.data
            self._owner_ident = 0
            self._count = 1
        waiter.wake()

    def _settle_promotion(self) -> None:
        """A release began on the in-process lock and the object was shared meanwhile.

        If the promotion found the lock held, the shared semaphore started taken on the
        holder's behalf: this release is the one it was waiting for, so pay it there too.
        """
        with self._mutex:
            owed, self._owed = self._owed, False
        if owed:
            self._inner.release()

    def _after_free(self) -> None:
        """A waiter arrived while we freed the lock: re-take it for them if still free."""
        with self._mutex:
            if self._shared is not None:
                return  # shared meanwhile: the waiter was sent to the backend
            if not self._queue or not self._inner.acquire(False):
                return  # no one left, or someone took it (and will hand it on at release)
            waiter = self._queue.pop()
            assert waiter is not None
            self._owner = waiter.data
            self._owner_ident = 0
            self._count = 1
        waiter.wake()

    # -- shared API --------------------------------------------------------------------

    def locked(self) -> bool:
        """Whether the lock is held."""
        return bool(self._inner.locked())

    def statistics(self) -> LockStatistics:
        """A snapshot: held or not, the owner strand, depth, and waiters by kind."""
        shared = self._shared
        if shared is not None:  # (held by this process or another; waiters of this one)
            waiting, by_kind = shared.waiting()
            locked = shared.locked()
            owner = self._owner if self._reentrant else None
            return LockStatistics(
                locked=locked,
                owner=owner,
                count=self._count if owner is not None else int(locked),
                waiting=waiting,
                waiting_by_kind=by_kind,
            )
        with self._mutex:
            locked = bool(self._inner.locked())
            return LockStatistics(
                locked=locked,
                owner=self._owner if locked else None,
                count=(self._count if self._reentrant else 1) if locked else 0,
                waiting=len(self._queue),
                waiting_by_kind=waiting_by_kind(self._queue),
            )


class Lock(_LockCore):
    """A primitive lock: ``threading.Lock``'s API, plus ``async with`` and ``async_acquire``.

    Any strand may release it, as with threading. The owner strand is recorded when the
    lock is handed over through its queue or instruments are installed; the uncontended
    fast path skips it (finding the current task costs more than the lock itself).

    Shared with processes, its holding process is recorded: if that process is killed
    holding it, the next strand that would wait for it gets
    :class:`plait.BrokenResourceError` naming the dead pid, and the lock is free again.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock; ``blocking``/``timeout`` exactly as ``threading.Lock.acquire``."""
        if blocking is True and timeout == -1:
            if self._inner.acquire(False):
                self._owner_ident = thread_key()
                if hooks.active:
                    self._took(current_strand())
                return True
            return self._acquire_slow(current_strand(), None)
        return self._acquire_slow(current_strand(), check_lock_args(blocking, timeout))

    def release(self) -> None:
        """Release the lock (from any strand); ``RuntimeError`` if it is not held."""
        if hooks.active:
            hooks.released(current_strand(), self)
        if self._queue._count == 0:
            self._owner = None
            self._owner_ident = 0
            inner = self._inner
            inner.release()  # RuntimeError("release unlocked lock"), as threading
            if inner is not self._inner:  # promoted while we released the old lock
                self._settle_promotion()
            if self._queue._count:
                self._after_free()
            return
        self._pass_on()

    def __enter__(self) -> bool:
        if self._inner.acquire(False):
            self._owner_ident = thread_key()
            if hooks.active:
                self._took(current_strand())
            return True
        return self._acquire_slow(current_strand(), None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def async_acquire(
        self, blocking: bool = True, timeout: float = -1
    ) -> Coroutine[Any, Any, bool]:
        """Coroutine form of :meth:`acquire` (cancel-safe: a cancelled wait holds nothing)."""
        wait = None if blocking is True and timeout == -1 else check_lock_args(blocking, timeout)
        return self._async_acquire(current_strand(), wait)

    async def _async_acquire(self, me: Strand, wait: float | None) -> bool:
        if self._inner.acquire(False):
            self._took(me)
            return True
        return await self._async_acquire_slow(me, wait)

    def __aenter__(self) -> Awaitable[Any]:
        if self._inner.acquire(False):
            if hooks.active:
                self._took(current_strand())
            return READY
        return self._async_acquire_slow(current_strand(), None)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        if hooks.active:
            hooks.released(current_strand(), self)
        if self._queue._count == 0:
            self._owner = None
            self._owner_ident = 0
            inner = self._inner
            inner.release()
            if inner is not self._inner:  # promoted while we released the old lock
                self._settle_promotion()
            if self._queue._count:
                self._after_free()
            return READY
        self._pass_on()
        return READY

    # -- Condition support (threading's private protocol, plus the strand) --------------

    def _is_owned(self) -> bool:
        return bool(self._inner.locked())

    def _plait_is_owned(self, me: Strand) -> bool:
        return bool(self._inner.locked())

    def _plait_release_save(self, me: Strand) -> Any:
        self.release()
        return None

    def _plait_acquire_restore(self, state: Any, me: Strand) -> None:
        if self._shared is not None:
            self._restore_shared(me)
            return
        if self._inner.acquire(False):
            self._took(me)
            return
        while not self._acquire_slow(me, None):
            pass  # interrupted by a cancel scope: Condition re-raises after this

    async def _plait_async_acquire_restore(self, state: Any, me: Strand) -> None:
        await self._async_acquire(me, None)

    def __repr__(self) -> str:
        state = "locked" if self._inner.locked() else "unlocked"
        shared = self._shared
        if shared is not None:
            return f"<{state} plait.Lock object shared={shared.prefix!r} at {id(self):#x}>"
        return f"<{state} plait.Lock object waiting={len(self._queue)} at {id(self):#x}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling shares the lock with another process (see ``plait._ipc.promotion``)."""
        from plait._ipc.promotion import share

        return share(self)


# The C fast paths (plait/_fastlock.c) take the place of these methods of Lock and call them
# for every case they do not finish: the Python methods above stay the reference.
_FAST_METHODS = (
    *("acquire", "release", "__enter__", "__exit__"),
    *("__aenter__", "__aexit__", "async_acquire"),
)
if FASTLOCK is not None:
    _entry = {
        name: Lock.__dict__[name]
        for name in (*_FAST_METHODS, "_async_acquire")
        if name != "__exit__"  # the C __exit__ is the C release
    }
    FASTLOCK.configure_lock(WaitQueue=WaitQueue, hooks=hooks, READY=READY, entry=_entry)
    for _name in _FAST_METHODS:
        delattr(Lock, _name)  # Lock now finds LockCore's C methods
