"""``Condition``: threading's condition variable over any plait lock, for every strand kind.

A waiter joins the condition's own wait queue *before* it releases the lock, so a notify
that comes right after the release is never missed. Whatever ends the wait (notify,
timeout, cancellation), the lock is re-taken before ``wait`` returns or raises, as both
threading and asyncio promise. A coroutine that is notified and then cancelled passes
the notification to the next waiter, so none is swallowed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from plait._core import Strand, WaitQueue, async_park, current_strand, new_mutex, park
from plait._sync._common import stdlib_timeout, waiting_by_kind
from plait._sync._lock import Lock
from plait._sync._rlock import RLock
from plait._sync._stats import ConditionStatistics

__all__ = ["Condition"]

T = TypeVar("T")
_monotonic = time.monotonic


class Condition:
    """``threading.Condition``'s API, plus ``async with``, ``async_wait``, ``async_wait_for``.

    ``lock`` defaults to a new :class:`plait.RLock`. A foreign lock (for example a
    ``threading.Lock``) works for the sync methods only.

    Shared with processes: a holder of its lock that dies is reported as for
    :class:`plait.Lock`; a waiter that dies costs ``notify()`` a liveness check.
    """

    # Its backend once shared (``_shared``; the seam: ``plait._ipc.promotion``).
    _backend_kind = "condition"
    _backend_home = "plait._sync._shared_wait"

    def __init__(self, lock: Any = None) -> None:
        if lock is None:
            lock = RLock()
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._plait = isinstance(lock, Lock | RLock)
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)
        # The backend once shared with processes (``_sync._shared_wait.ConditionBackend``):
        # its waiters wait there then. ``None`` while local.
        self._shared: Any = None
        # What a wait parks on (instruments, wait_parked, strand.parked_on): the condition
        # itself, or the primitive built on it (a Barrier's waits park on the Barrier).
        self._park_on: object = self

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return self._lock.__exit__(exc_type, exc, tb)

    def __aenter__(self) -> Awaitable[None]:
        self._need_plait()
        return self._lock.__aenter__()  # type: ignore[no-any-return]

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        return self._lock.__aexit__(exc_type, exc, tb)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        shared = self._shared
        if shared is not None:
            return f"<plait.Condition({self._lock!r}) shared={shared.prefix!r}>"
        return f"<plait.Condition({self._lock!r}, {len(self._queue)})>"

    def _need_plait(self) -> None:
        if not self._plait:
            raise TypeError(f"the async forms of Condition need a plait lock, not {self._lock!r}")

    # -- ownership, through the lock ---------------------------------------------------

    def _is_owned(self, me: Strand | None = None) -> bool:
        lock = self._lock
        if self._plait:
            return bool(lock._plait_is_owned(current_strand() if me is None else me))
        try:
            return bool(lock._is_owned())
        except AttributeError:
            pass
        if lock.acquire(False):  # threading's probe for a plain lock
            lock.release()
            return False
        return True

    def _release_save(self, me: Strand) -> Any:
        lock = self._lock
        if self._plait:
            return lock._plait_release_save(me)
        if hasattr(lock, "_release_save"):
            return lock._release_save()
        lock.release()
        return None

    def _acquire_restore(self, state: Any, me: Strand) -> None:
        lock = self._lock
        if not self._plait:
            if hasattr(lock, "_acquire_restore"):
                lock._acquire_restore(state)
            else:
                lock.acquire()
            return
        scopes = me.cancel_scopes
        if scopes:  # re-take the lock even if a cancel scope fired; it raises afterwards
            me.cancel_scopes = []
        try:
            lock._plait_acquire_restore(state, me)
        finally:
            if scopes:
                me.cancel_scopes = scopes

    # -- waiting -----------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify or ``timeout``, re-take the lock.

        ``True`` if notified, ``False`` on timeout (a timeout <= 0 only polls).
        """
        me = current_strand()
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = stdlib_timeout(timeout)
        with self._mutex:
            shared = self._shared
            if shared is None:
                waiter = self._queue.enqueue_current(self._park_on)
        if shared is not None:  # shared: wait on the backend
            return bool(shared.wait(self, me, wait))
        saved = self._release_save(me)
        try:
            return park(waiter, wait)
        finally:
            self._acquire_restore(saved, me)

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T | bool:
        """Wait until ``predicate()`` is true, or ``timeout``; return its last value."""
        deadline = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if deadline is None:
                    deadline = _monotonic() + waittime
                else:
                    waittime = deadline - _monotonic()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def async_wait(self, timeout: float | None = None) -> Coroutine[Any, Any, bool]:
        """Coroutine form of :meth:`wait`; cancel-safe (re-takes the lock, then raises)."""
        self._need_plait()
        return self._async_wait(current_strand(), timeout)

    async def _async_wait(self, me: Strand, timeout: float | None) -> bool:
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = stdlib_timeout(timeout)
        with self._mutex:
            shared = self._shared
            if shared is None:
                waiter = self._queue.async_enqueue_current(self._park_on)
        if shared is not None:  # shared: wait on the backend
            return bool(await shared.async_wait(self, me, wait))
        saved = self._release_save(me)
        try:
            return await async_park(waiter, wait, self._pass_notification)
        finally:
            cancelled: BaseException | None = None
            while True:
                try:
                    await self._lock._plait_async_acquire_restore(saved, me)
                    break
                except BaseException as exc:  # a cancel while re-taking: take it anyway
                    cancelled = exc
            if cancelled is not None:
                raise cancelled

    def async_wait_for(
        self, predicate: Callable[[], T], timeout: float | None = None
    ) -> Coroutine[Any, Any, T | bool]:
        """Coroutine form of :meth:`wait_for`."""
        self._need_plait()
        return self._async_wait_for(current_strand(), predicate, timeout)

    async def _async_wait_for(
        self, me: Strand, predicate: Callable[[], T], timeout: float | None
    ) -> T | bool:
        deadline = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if deadline is None:
                    deadline = _monotonic() + waittime
                else:
                    waittime = deadline - _monotonic()
                    if waittime <= 0:
                        break
            await self._async_wait(me, waittime)
            result = predicate()
        return result

    def _pass_notification(self, _value: object) -> None:
        """A notified coroutine was cancelled: the notification goes to the next waiter."""
        with self._mutex:
            waiter = self._queue.pop()
        if waiter is not None:
            waiter.wake()

    # -- notifying ---------------------------------------------------------------------

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters (FIFO); the caller must hold the lock."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        woken = []
        with self._mutex:
            shared = self._shared
            while n > 0 and shared is None:
                waiter = self._queue.pop()
                if waiter is None:
                    break
                woken.append(waiter)
                n -= 1
        if shared is not None:
            shared.notify(n)
            return
        for waiter in woken:
            waiter.wake()

    def notify_all(self) -> None:
        """Wake every waiter; the caller must hold the lock."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        with self._mutex:
            shared = self._shared
            woken = self._queue.pop_all()
        if shared is not None:
            shared.notify_all()
        for waiter in woken:
            waiter.wake()

    def notifyAll(self) -> None:
        """Deprecated alias of :meth:`notify_all`, as in threading."""
        import warnings

        warnings.warn(
            "notifyAll() is deprecated, use notify_all() instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.notify_all()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling shares the condition (and its lock) with another process."""
        from plait._ipc.promotion import promote, share

        if not self._plait:
            raise TypeError(
                f"a plait.Condition over {self._lock!r} cannot be shared with another "
                "process: give it a plait.Lock or plait.RLock"
            )
        promote(self._lock)  # (first, and outside the condition's mutex)
        return share(self, (self._lock,))

    def statistics(self) -> ConditionStatistics:
        """A snapshot: strands in ``wait()`` by kind, and the lock's own statistics."""
        shared = self._shared
        if shared is not None:
            waiting, by_kind = shared.waiting()
            lock = self._lock.statistics()
            return ConditionStatistics(waiting=waiting, waiting_by_kind=by_kind, lock=lock)
        with self._mutex:
            waiting = len(self._queue)
            by_kind = waiting_by_kind(self._queue)
        stats = self._lock.statistics() if self._plait else None
        return ConditionStatistics(waiting=waiting, waiting_by_kind=by_kind, lock=stats)
