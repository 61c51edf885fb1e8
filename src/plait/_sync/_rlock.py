"""``RLock``: a re-entrant lock owned by a *strand* (a thread, or a coroutine task).

The same mechanics as :class:`plait.Lock` (fast path on a private ``_thread`` lock, FIFO
hand-off), plus the owner and a recursion count. A coroutine strand re-enters it with
``async with``; ``asyncio.wait_for(rlock.async_acquire(), t)`` still gives it to the
caller on Python 3.11, because ``async_acquire()`` records its caller when called.
"""

from __future__ import annotations

from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from plait._core import Strand, current_strand, hooks
from plait._core.strands import FASTLOCK
from plait._sync._common import check_lock_args
from plait._sync._lock import _LockCore

__all__ = ["RLock"]


class RLock(_LockCore):
    """``threading.RLock``'s API and semantics, plus ``async with`` and ``async_acquire``.

    Shared with processes, a holder killed while it holds it is reported as for
    :class:`plait.Lock` (``BrokenResourceError`` naming the pid; the lock is free again).
    """

    __slots__ = ()
    _reentrant = True

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock, or go one level deeper if the calling strand holds it."""
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

    def release(self) -> None:
        """Go one level up; the last release frees it. Only the owner strand may release."""
        self._release(current_strand())

    def _release(self, me: Strand) -> None:
        if self._owner is not me:
            raise RuntimeError("cannot release un-acquired lock")
        if self._count > 1:
            self._count -= 1
            return
        if hooks.active:
            hooks.released(me, self)
        self._pass_on()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release(current_strand())

    def async_acquire(
        self, blocking: bool = True, timeout: float = -1
    ) -> Coroutine[Any, Any, bool]:
        """Coroutine form of :meth:`acquire`; the caller's strand becomes the owner."""
        wait = None if blocking is True and timeout == -1 else check_lock_args(blocking, timeout)
        return self._async_acquire(current_strand(), wait)

    async def _async_acquire(self, me: Strand, wait: float | None) -> bool:
        if self._owner is me:
            self._count += 1
            return True
        if self._inner.acquire(False):
            self._took(me)
            return True
        return await self._async_acquire_slow(me, wait)

    async def __aenter__(self) -> None:
        await self._async_acquire(current_strand(), None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release(current_strand())

    # -- Condition support (threading's private protocol, plus the strand) --------------

    def _is_owned(self) -> bool:
        return self._owner is current_strand()

    def _release_save(self) -> Any:  # threading.Condition's protocol
        return self._plait_release_save(current_strand())

    def _acquire_restore(self, state: Any) -> None:  # threading.Condition's protocol
        self._plait_acquire_restore(state, current_strand())

    def _plait_is_owned(self, me: Strand) -> bool:
        return self._owner is me

    def _plait_release_save(self, me: Strand) -> Any:
        if self._owner is not me:
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._count = 1
        if hooks.active:
            hooks.released(me, self)
        self._pass_on()
        return count

    def _plait_acquire_restore(self, state: Any, me: Strand) -> None:
        if self._shared is not None:
            try:
                self._restore_shared(me)
            finally:
                if self._owner is me:
                    self._count = state
            return
        if self._inner.acquire(False):
            self._took(me)
        else:
            while not self._acquire_slow(me, None):
                pass  # interrupted by a cancel scope: Condition re-raises after this
        self._count = state

    async def _plait_async_acquire_restore(self, state: Any, me: Strand) -> None:
        if self._inner.acquire(False):
            self._took(me)
        else:
            await self._async_acquire_slow(me, None)
        self._count = state

    def __repr__(self) -> str:
        state = "locked" if self._inner.locked() else "unlocked"
        shared = self._shared
        where = f"shared={shared.prefix!r} " if shared is not None else ""
        return (
            f"<{state} plait.RLock object owner={self._owner!r} count={self._count} "
            f"{where}at {id(self):#x}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling shares the lock with another process (see ``plait._ipc.promotion``)."""
        from plait._ipc.promotion import share

        return share(self)


# The C fast paths (plait/_fastlock.c: a re-entry, a free lock taken, a release with nobody
# waiting) take the place of these methods of RLock and call them for every other case: the
# Python methods above stay the reference.
if FASTLOCK is not None:
    FASTLOCK.configure_rlock(
        owner=_LockCore, acquire=RLock.__dict__["acquire"], release=RLock.__dict__["release"]
    )
    for _name, _fast in (
        ("acquire", FASTLOCK.LockCore._rlock_acquire),
        ("__enter__", FASTLOCK.LockCore._rlock_acquire),
        ("release", FASTLOCK.LockCore._rlock_release),
        ("__exit__", FASTLOCK.LockCore._rlock_exit),
    ):
        setattr(RLock, _name, _fast)
