"""``Event``: threading's event flag, waited on by threads and coroutines on any loop.

``set()`` wakes every waiter of every kind at once; a waiter that was woken returns
``True`` even if the flag was cleared again before it ran, exactly as threading's does.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Coroutine
from typing import Any

from plait._core import WOKEN, WaitQueue, async_park, new_mutex, park
from plait._sync._common import MIGRATED, stdlib_timeout, time_left, waiting_by_kind
from plait._sync._stats import EventStatistics

__all__ = ["Event"]


class Event:
    """``threading.Event``'s API, plus ``async_wait``."""

    __slots__ = ("__weakref__", "_flag", "_mutex", "_queue", "_shared")
    # Its backend once shared (``_shared``; the seam: ``plait._ipc.promotion``).
    _backend_kind = "event"
    _backend_home = "plait._sync._shared"

    def __init__(self) -> None:
        self._flag = False
        self._mutex = new_mutex()
        self._queue = WaitQueue(self._mutex)
        # The backend once shared with processes (``_sync._shared.EventBackend``): its
        # flag lives there then. ``None`` while local.
        self._shared: Any = None

    def is_set(self) -> bool:
        """Whether the flag is set."""
        shared = self._shared
        return self._flag if shared is None else bool(shared.is_set())

    def isSet(self) -> bool:
        """Deprecated alias of :meth:`is_set`, as in threading."""
        warnings.warn(
            "isSet() is deprecated, use is_set() instead", DeprecationWarning, stacklevel=2
        )
        return self.is_set()

    def set(self) -> None:
        """Set the flag and wake every waiter (a select waiting on it is one of them)."""
        with self._mutex:
            shared = self._shared
            if shared is None:
                self._flag = True
                woken = self._queue.pop_all(True)
        if shared is not None:
            shared.set()
            return
        for waiter in woken:
            waiter.wake()

    def __select_case__(self) -> Any:
        """The case for ``plait.select``: ready (with value ``True``) once the flag is set,
        here or -- once shared -- in any process."""
        from plait._core.select import case_of  # (select registers the event's case there)

        case = case_of(self)
        if case is None:
            raise TypeError(f"{self!r} has no select case: import plait to register it")
        return case

    def clear(self) -> None:
        """Reset the flag; later waits block until :meth:`set` again."""
        with self._mutex:
            shared = self._shared
            if shared is None:
                self._flag = False
                return
        shared.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout``; return the flag (``False`` on timeout)."""
        if timeout is not None:
            timeout = stdlib_timeout(timeout)
        with self._mutex:
            if self._shared is not None:
                waiter = None
            elif self._flag:
                return True
            elif timeout is not None and not timeout > 0:
                return False
            else:
                waiter = self._queue.enqueue_current(self)
        if waiter is None:  # shared: wait on the backend's flag
            return bool(self._shared.wait(self, timeout))
        started = time.monotonic() if timeout is not None else 0.0
        if park(waiter, timeout) and waiter.value is MIGRATED:
            return bool(self.wait(time_left(timeout, started)))
        return waiter.state == WOKEN

    def async_wait(self, timeout: float | None = None) -> Coroutine[Any, Any, bool]:
        """Coroutine form of :meth:`wait`."""
        return self._async_wait(None if timeout is None else stdlib_timeout(timeout))

    async def _async_wait(self, timeout: float | None) -> bool:
        with self._mutex:
            if self._shared is not None:
                waiter = None
            elif self._flag:
                return True
            elif timeout is not None and not timeout > 0:
                return False
            else:
                waiter = self._queue.async_enqueue_current(self)
        if waiter is None:  # shared: wait on the backend's flag
            return bool(await self._shared.async_wait(self, timeout))
        started = time.monotonic() if timeout is not None else 0.0
        if await async_park(waiter, timeout) and waiter.value is MIGRATED:
            return bool(await self._async_wait(time_left(timeout, started)))
        return waiter.state == WOKEN

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling shares the event with another process (see ``plait._ipc.promotion``)."""
        from plait._ipc.promotion import share

        return share(self)

    def statistics(self) -> EventStatistics:
        """A snapshot: the flag and waiters by kind."""
        shared = self._shared
        if shared is not None:
            waiting, by_kind = shared.waiting()
            return EventStatistics(is_set=shared.is_set(), waiting=waiting, waiting_by_kind=by_kind)
        with self._mutex:
            return EventStatistics(
                is_set=self._flag,
                waiting=len(self._queue),
                waiting_by_kind=waiting_by_kind(self._queue),
            )

    def __repr__(self) -> str:
        status = "set" if self.is_set() else "unset"
        shared = ", shared" if self._shared is not None else ""
        return f"<plait.Event at {id(self):#x}: {status}{shared}>"
