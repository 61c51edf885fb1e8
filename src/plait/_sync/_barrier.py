"""``Barrier``: threading's barrier, for threads and coroutines together.

It is a small state machine over a plait :class:`Condition`, so parties of any strand
kind meet at the same barrier. Phases: *filling* (parties arrive), *draining* (the last
one arrived; everyone leaves), *resetting* (``reset()`` while parties waited: they leave
with :class:`BrokenBarrierError`), *broken*.

:class:`BrokenBarrierError` is both ``threading.BrokenBarrierError`` and
``asyncio.BrokenBarrierError``, so either ``except`` clause catches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from plait._core import current_strand, hooks
from plait._errors import BrokenBarrierError
from plait._sync._common import BROKEN, DRAINING, FILLING, MIGRATED, RESETTING, stdlib_timeout
from plait._sync._condition import Condition
from plait._sync._lock import Lock
from plait._sync._stats import BarrierStatistics

__all__ = ["Barrier", "BrokenBarrierError"]

_FILLING, _DRAINING, _RESETTING, _BROKEN = FILLING, DRAINING, RESETTING, BROKEN
_NOT_COUNTED = -1  # (a party that was shared away before it counted itself in)
_STATE_NAMES = {
    _FILLING: "filling",
    _DRAINING: "draining",
    _RESETTING: "resetting",
    _BROKEN: "broken",
}


def _left(timeout: float | None, started: float) -> float | None:
    """What is left of ``timeout`` (seconds, from ``started``), never below 0."""
    if timeout is None:
        return None
    return max(0.0, timeout - (time.monotonic() - started))


class _Parties:
    """A barrier's local waiters, as promotion sees them: the parties waiting in its
    condition, woken (with the barrier's lock held) to go on on the shared backend."""

    __slots__ = ("cond",)

    def __init__(self, cond: Condition) -> None:
        self.cond = cond

    def pop_all(self, value: Any = MIGRATED) -> list[Any]:
        self.cond.notify_all()  # (each sees ``_shared`` set, and moves: ``_moved_wait``)
        return []


class Barrier:
    """``threading.Barrier``'s API (``parties``, ``action``, ``timeout``), plus ``async_wait``."""

    # Its backend once shared (``_shared``; the seam: ``plait._ipc.promotion``).
    _backend_kind = "barrier"
    _backend_home = "plait._sync._shared_wait"

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> None:
        if parties < 1:
            raise ValueError("parties must be >= 1")
        self._cond = Condition(Lock())
        self._cond._park_on = self  # a party waits on the barrier (what instruments see)
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._state = _FILLING
        self._count = 0
        # The backend once shared with processes (``_sync._shared_wait.BarrierBackend``):
        # the count and phase live there then. ``None`` while local.
        self._shared: Any = None

    @property
    def _mutex(self) -> Condition:
        """What guards the local state (the promotion seam holds it): the barrier's lock."""
        return self._cond

    @property
    def _queue(self) -> _Parties:
        return _Parties(self._cond)

    # -- the state machine (every method here runs with the condition's lock held) -----

    def _arrive(self, arrived: list[bool]) -> int:
        """Count this party in; ``arrived`` says so to the caller's ``finally`` (a process
        strand's cancellation never lands in here: see ``_shared_wait``)."""
        if self._state == _BROKEN:
            raise BrokenBarrierError
        index = self._count
        self._count += 1
        arrived.append(True)
        return index

    def _trip(self) -> None:
        """The last party arrived: run the action, then let everyone go."""
        try:
            if self._action is not None:
                self._action()
            self._state = _DRAINING
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    def _passed(self, released: bool) -> None:
        if not released:
            self._break()
            raise BrokenBarrierError
        if self._state < 0:
            raise BrokenBarrierError

    def _leave(self) -> None:
        shared = self._shared
        if shared is not None:  # counted in locally, leaving after the promotion
            shared.leave()
            return
        self._count -= 1
        if self._count == 0 and self._state in (_RESETTING, _DRAINING):
            self._state = _FILLING
            self._cond.notify_all()

    def _break(self) -> None:
        self._state = _BROKEN
        self._cond.notify_all()

    # (A wait holds these bound to the class it began with: a barrier shared meanwhile
    # ends the local wait through ``_shared``, and the party goes on in ``_moved_wait``.)
    def _not_filling(self) -> bool:
        return self._state != _FILLING or self._shared is not None

    def _settled(self) -> bool:
        return self._state not in (_DRAINING, _RESETTING) or self._shared is not None

    # -- waiting -----------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int:
        """Wait for all parties; return this party's arrival index (0 .. parties-1)."""
        timeout = self._timeout if timeout is None else stdlib_timeout(timeout)
        shared = self._shared
        if shared is not None:
            return int(shared.wait(self, timeout))
        started = time.monotonic()
        moved = _NOT_COUNTED
        with self._cond:
            self._cond.wait_for(self._settled)
            if self._shared is None:
                arrived: list[bool] = []
                try:
                    index = self._arrive(arrived)
                    if index + 1 == self._parties:
                        self._trip()
                    else:
                        released = self._cond.wait_for(self._not_filling, timeout)
                        if self._promoted():  # shared while it waited: go on there
                            arrived.clear()  # (counted in there)
                            moved = index
                        else:
                            self._passed(bool(released))
                    if moved == _NOT_COUNTED:
                        if hooks.active:
                            hooks.acquired(current_strand(), self)
                        return index
                finally:
                    if arrived:
                        self._leave()
        # Shared (pickled to a process) while this party waited here: only the shared
        # state says when the barrier trips now (see ``_shared_wait``).
        return int(self._moved_wait(moved, _left(timeout, started)))

    def async_wait(self, timeout: float | None = None) -> Coroutine[Any, Any, int]:
        """Coroutine form of :meth:`wait`; a cancelled party simply leaves the barrier."""
        return self._async_wait(self._timeout if timeout is None else timeout)

    async def _async_wait(self, timeout: float | None) -> int:
        shared = self._shared
        if shared is not None:
            timeout = None if timeout is None else stdlib_timeout(timeout)
            return int(await shared.async_wait(self, timeout))
        cond = self._cond
        started = time.monotonic()
        moved = _NOT_COUNTED
        async with cond:
            await cond.async_wait_for(self._settled)
            if self._shared is None:
                arrived: list[bool] = []
                try:
                    index = self._arrive(arrived)
                    if index + 1 == self._parties:
                        self._trip()
                    else:
                        released = await cond.async_wait_for(self._not_filling, timeout)
                        if self._promoted():  # shared while it waited: go on there
                            arrived.clear()  # (counted in there)
                            moved = index
                        else:
                            self._passed(bool(released))
                    if moved == _NOT_COUNTED:
                        if hooks.active:
                            hooks.acquired(current_strand(), self)
                        return index
                finally:
                    if arrived:
                        self._leave()
        return int(await self._async_moved_wait(moved, _left(timeout, started)))

    def _promoted(self) -> bool:
        return self._shared is not None

    def _moved_wait(self, index: int, timeout: float | None) -> int:
        """Shared while this party waited locally: it goes on on the backend."""
        return int(self._shared.moved_wait(self, index, timeout))

    async def _async_moved_wait(self, index: int, timeout: float | None) -> int:
        return int(await self._shared.async_moved_wait(self, index, timeout))

    # -- control -----------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the initial state; parties waiting now get :class:`BrokenBarrierError`."""
        shared = self._shared
        if shared is not None:
            shared.reset()
            return
        with self._cond:
            if self._shared is not None:  # shared meanwhile
                self._shared.reset()
                return
            if self._count > 0:
                if self._state in (_FILLING, _BROKEN):
                    self._state = _RESETTING
            else:
                self._state = _FILLING
            self._cond.notify_all()

    def abort(self) -> None:
        """Break the barrier: current and future waits raise :class:`BrokenBarrierError`."""
        with self._cond:
            shared = self._shared
            if shared is None:
                self._break()
        if shared is not None:
            shared.abort()

    @property
    def parties(self) -> int:
        """How many parties must arrive to trip the barrier."""
        return self._parties

    def _phase(self) -> tuple[int, int]:
        """(count, phase) now: the backend's once shared (a snapshot)."""
        shared = self._shared
        if shared is not None:
            return shared.count(), shared.phase()
        return self._count, self._state

    @property
    def n_waiting(self) -> int:
        """How many parties wait in the filling phase now."""
        count, phase = self._phase()
        return count if phase == _FILLING else 0

    @property
    def broken(self) -> bool:
        """Whether the barrier is broken."""
        return self._phase()[1] == _BROKEN

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling shares the barrier (its phase and count) with a process."""
        from plait._ipc.promotion import share

        return share(self, (self._parties, self._action, self._timeout))

    def statistics(self) -> BarrierStatistics:
        """A snapshot: parties, waiting parties by kind, and the phase."""
        count, phase = self._phase()
        shared = self._shared
        if shared is not None:
            by_kind = shared.waiting()[1]
        else:
            by_kind = self._cond.statistics().waiting_by_kind
        return BarrierStatistics(
            parties=self._parties,
            n_waiting=count if phase == _FILLING else 0,
            broken=phase == _BROKEN,
            state=_STATE_NAMES[phase],
            waiting_by_kind=by_kind,
        )

    def __repr__(self) -> str:
        if self.broken:
            return f"<plait.Barrier at {id(self):#x}: broken>"
        return f"<plait.Barrier at {id(self):#x}: waiters={self.n_waiting}/{self.parties}>"
