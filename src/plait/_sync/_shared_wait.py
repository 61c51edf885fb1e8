"""Condition and Barrier across processes: the shared forms and their promotion.

A :class:`SharedCondition` has a segment of its own (``_xproc``) beside its lock's: its
waiters announce themselves in its wait table and park; ``notify(n)`` rings up to ``n`` of
them. A :class:`SharedBarrier` keeps its count, phase and trip generation, and each
process's parties counted in, in its own segment, all changed under its robust mutex.
The lock-like shared classes and :func:`promote` are ``_shared``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from plait._core import current_strand, hooks, safepoint
from plait._errors import BrokenBarrierError
from plait._sync._barrier import _BROKEN, _DRAINING, _FILLING, _RESETTING, _STATE_NAMES, Barrier
from plait._sync._common import MIGRATED, stdlib_timeout
from plait._sync._condition import Condition
from plait._sync._shared import _known, _known_lock, _waiting, promote
from plait._sync._stats import BarrierStatistics, ConditionStatistics
from plait._sync._xproc import (
    COUNT,
    GEN,
    NOT_YET,
    STATE,
    SharedState,
    async_block,
    block,
    deadline_of,
    defer_in,
)

__all__ = ["SharedBarrier", "SharedCondition", "promote_barrier", "promote_condition"]

_monotonic = time.monotonic


class SharedCondition(Condition):
    """A promoted :class:`plait.Condition` over a shared lock.

    A waiter announces itself in the condition's wait table (its mutex held, while it
    still holds the lock, so a notify made after it let the lock go always finds it),
    lets the lock go and parks; ``notify(n)`` rings up to ``n`` announced waiters, in any
    process, and ``notify_all()`` every one. A waiter that times out withdraws its
    announcement; one that was rung and then cancelled passes its ring on (no notification
    is swallowed). A waiter whose process died costs a notify one failed ring (its
    doorbell is gone), never a wait.
    """

    _shared: SharedState

    def _announce(self, me: Any, coroutine: bool) -> tuple[Any, Any]:
        """Announce the calling strand and let the lock go, all or nothing; ``(waiter,
        saved lock state)``."""
        state = self._shared
        room = state.room
        waiter: Any = None
        saved: Any = None
        released = done = False
        safepoint.enter()
        try:
            with state.guard:
                waiter = room.enqueue(0, self._park_on, coroutine)
            saved = self._release_save(me)
            released = done = True
        finally:
            try:
                safepoint.leave()  # (raises a cancellation that came meanwhile)
            except BaseException:
                done = False
                raise
            finally:
                if not done:  # failed or cancelled: not waiting, holding the lock again
                    if waiter is not None:
                        room.abandon(waiter, 0)
                    if released:
                        self._acquire_restore(saved, me)
        return waiter, saved

    def wait(self, timeout: float | None = None) -> bool:
        me = current_strand()
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = stdlib_timeout(timeout)
        waiter, saved = self._announce(me, False)
        try:
            return bool(self._shared.room.park(waiter, 0, wait))
        finally:
            self._acquire_restore(saved, me)

    async def _async_wait(self, me: Any, timeout: float | None) -> bool:
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = stdlib_timeout(timeout)
        waiter, saved = self._announce(me, True)
        try:
            return bool(await self._shared.room.async_park(waiter, 0, wait))
        finally:
            cancelled: BaseException | None = None
            while True:  # re-take the lock whatever happens, as asyncio.Condition does
                try:
                    await self._lock._plait_async_acquire_restore(saved, me)
                    break
                except BaseException as exc:
                    cancelled = cancelled or exc
            if cancelled is not None:
                raise cancelled

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        state = self._shared
        with state.guard:
            state.wake(0, n)

    def notify_all(self) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        state = self._shared
        with state.guard:
            state.wake_all()

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
            state = SharedState.create("condition")
            cond._shared = state
            cond.__class__ = SharedCondition
            # Local waiters wake up (a spurious wake-up, which wait_for absorbs) and
            # from then on wait on the shared condition.
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
    state = SharedState.open(prefix, "plait.Condition")
    state.what = "condition"
    cond = SharedCondition.__new__(SharedCondition)
    Condition.__init__(cond, lock)
    cond._shared = state
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:
            return known
        _known[prefix] = cond
    return cond


# -- barriers ---------------------------------------------------------------------------


class _Party:
    """One call of :meth:`SharedBarrier.wait`: where it is in the barrier's round."""

    __slots__ = ("gen", "index", "trip")

    def __init__(self) -> None:
        self.index = -1  # counted in: its arrival index
        self.gen = 0
        self.trip = False  # the last to arrive: it trips the barrier


class SharedBarrier(Barrier):
    """A promoted :class:`plait.Barrier`: its count, phase and trip generation, and each
    process's parties counted in, live in shared memory (changed under its mutex).

    A party that died while counted in breaks the barrier (everyone waiting gets
    :class:`threading.BrokenBarrierError`); ``reset()`` drops dead parties from the count.
    Every wait, the wait for a draining or resetting round to settle included, is bounded
    by the party's timeout.
    """

    _shared: SharedState

    # (a snapshot each; the setters serve a local ``wait`` that was under way when the
    # barrier was shared)
    @property
    def _count(self) -> int:
        return int(self._shared.words[COUNT])

    @_count.setter
    def _count(self, value: int) -> None:
        with self._shared.guard:
            self._shared.words[COUNT] = value

    @property
    def _state(self) -> int:
        return int(self._shared.words[STATE])

    @_state.setter
    def _state(self, value: int) -> None:
        with self._shared.guard:
            self._shared.words[STATE] = value

    # -- (mutex held) ----------------------------------------------------------------

    def _break_shared(self) -> None:
        state = self._shared
        state.words[STATE] = _BROKEN
        state.wake_all()

    def _leave_shared(self) -> None:
        """This party leaves its round: un-counted first, then out of the count."""
        state = self._shared
        words = state.words
        state.slots.add(-1)
        words[COUNT] = max(0, words[COUNT] - 1)
        if words[COUNT] == 0 and words[STATE] in (_RESETTING, _DRAINING):
            words[STATE] = _FILLING
            state.wake_all()

    def _drop_dead(self, breaks: bool) -> bool:
        """Take dead processes' parties out of the count; break the barrier if one died
        counted in while it filled (``breaks``). Whether any were found."""
        state = self._shared
        words = state.words
        dead = sum(n for _tag, n in state.slots.take_dead() if n > 0)
        if not dead:
            return False
        words[COUNT] = max(0, words[COUNT] - dead)
        if breaks and words[STATE] == _FILLING:
            words[STATE] = _BROKEN
        if words[COUNT] == 0 and words[STATE] in (_RESETTING, _DRAINING):
            words[STATE] = _FILLING
        state.wake_all()
        return True

    def _attempt(self, party: _Party) -> Callable[[bool], Any]:
        words = self._shared.words
        parties = self._parties

        def attempt(suspect: bool) -> Any:
            if party.index < 0:  # not counted in yet: wait for a filling round
                if suspect:
                    self._drop_dead(breaks=True)
                phase = words[STATE]
                if phase == _BROKEN:
                    raise BrokenBarrierError
                if phase != _FILLING or words[COUNT] >= parties:
                    return NOT_YET
                self._shared.slots.add(1)
                index = int(words[COUNT])
                words[COUNT] = index + 1
                party.index, party.gen = index, int(words[GEN])
                if index + 1 == parties:
                    party.trip = True
                    return index
                return NOT_YET
            if words[GEN] != party.gen:  # tripped: pass
                self._leave_shared()
                return party.index
            if words[STATE] != _FILLING:  # broken, or reset while it waited
                self._leave_shared()
                party.index = -2
                raise BrokenBarrierError
            if suspect and self._drop_dead(breaks=True):
                self._leave_shared()
                party.index = -2
                raise BrokenBarrierError
            return NOT_YET

        return attempt

    def _blockers(self) -> list[int]:
        return self._shared.slots.holders()

    def _trip_shared(self, party: _Party) -> int:
        """The last party arrived: run the action (outside the mutex), then let every party
        go, or break the barrier if the action raised."""
        state = self._shared
        try:
            if self._action is not None:
                self._action()
        except BaseException:
            with state.guard:
                self._break_shared()
                self._leave_shared()
            raise
        with state.guard:
            words = state.words
            words[STATE] = _DRAINING
            words[GEN] += 1
            state.wake_all()
            self._leave_shared()
        return party.index

    def _timed_out(self, party: _Party) -> None:
        """The party's timeout passed: break the barrier (threading's rule), leave it."""
        state = self._shared
        with state.guard:
            if party.index >= 0:
                if state.words[GEN] == party.gen and state.words[STATE] == _FILLING:
                    self._break_shared()
                self._leave_shared()
            party.index = -2
        raise BrokenBarrierError

    def _abandon(self, party: _Party) -> None:
        """A cancelled party leaves the round it was counted in (if any)."""
        if party.index >= 0:
            state = self._shared
            with state.guard:
                self._leave_shared()
            party.index = -2

    # -- parties that waited here before the barrier was shared ------------------------

    # A party still in the local wait (``Barrier.wait``) when the barrier is shared is
    # woken by the promotion, ends its local wait, and goes on in ``_moved_wait``.
    def _leave(self) -> None:
        # (a local party that leaves after the promotion: cancelled, or its wait failed)
        with self._shared.guard:
            self._leave_shared()

    def _moved(self, index: int) -> _Party | int:
        """The shared party of a local one counted in as ``index`` before the promotion
        (a fresh segment: generation 0), or its index if the barrier tripped then."""
        party = _Party()
        party.index, party.gen = index, 0
        state = self._shared
        with state.guard:
            if state.words[GEN] == 0 and state.words[STATE] == _DRAINING:
                self._leave_shared()  # it tripped before the promotion: pass
                if hooks.active:
                    hooks.acquired(current_strand(), self)
                return index
        return party

    def _moved_wait(self, index: int, timeout: float | None) -> int:
        if index < 0:  # not counted in yet: a fresh wait here
            return self.wait(timeout)
        party = self._moved(index)
        if isinstance(party, int):
            return party
        return self._wait_as(party, deadline_of(timeout))

    async def _async_moved_wait(self, index: int, timeout: float | None) -> int:
        if index < 0:
            return await self._async_wait(timeout)
        party = self._moved(index)
        if isinstance(party, int):
            return party
        return await self._async_wait_as(party, deadline_of(timeout))

    # -- waiting -----------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int:
        timeout = self._timeout if timeout is None else stdlib_timeout(timeout)
        return self._wait_as(_Party(), deadline_of(timeout))

    def _wait_as(self, party: _Party, deadline: float | None) -> int:
        state = self._shared
        try:
            got = block(state, self, self._attempt(party), deadline, self._blockers)
            if got is NOT_YET:
                self._timed_out(party)
            if party.trip:
                got = self._trip_shared(party)
        except BrokenBarrierError:
            raise
        except BaseException:
            self._abandon(party)
            raise
        if hooks.active:
            hooks.acquired(current_strand(), self)
        return int(got)

    def async_wait(self, timeout: float | None = None) -> Coroutine[Any, Any, int]:
        return self._async_wait(self._timeout if timeout is None else timeout)

    async def _async_wait(self, timeout: float | None) -> int:
        timeout = None if timeout is None else stdlib_timeout(timeout)
        return await self._async_wait_as(_Party(), deadline_of(timeout))

    async def _async_wait_as(self, party: _Party, deadline: float | None) -> int:
        state = self._shared
        try:
            got = await async_block(state, self, self._attempt(party), deadline, self._blockers)
            if got is NOT_YET:
                self._timed_out(party)
            if party.trip:
                got = self._trip_shared(party)
        except BrokenBarrierError:
            raise
        except BaseException:
            self._abandon(party)
            raise
        if hooks.active:
            hooks.acquired(current_strand(), self)
        return int(got)

    def reset(self) -> None:
        state = self._shared
        with state.guard:
            self._drop_dead(breaks=False)
            words = state.words
            if words[COUNT] > 0:
                if words[STATE] in (_FILLING, _BROKEN):
                    words[STATE] = _RESETTING
            else:
                words[STATE] = _FILLING
            state.wake_all()

    def abort(self) -> None:
        state = self._shared
        with state.guard:
            self._break_shared()

    def statistics(self) -> BarrierStatistics:
        _waiting_n, by_kind = _waiting(self)
        phase = self._state
        return BarrierStatistics(
            parties=self._parties,
            n_waiting=self.n_waiting,
            broken=phase == _BROKEN,
            state=_STATE_NAMES[phase],
            waiting_by_kind=by_kind,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_barrier,
            (self._parties, self._action, self._timeout, self._shared.prefix),
        )


def _rebuild_parties(state: SharedState) -> None:
    """(mutex held, after a holder died inside it) The count is the parties counted in."""
    state.words[COUNT] = max(0, state.slots.total())


def _release_mine_parties(state: SharedState) -> None:
    held = state.slots.take_mine()
    if held > 0:
        words = state.words
        words[COUNT] = max(0, words[COUNT] - held)
        if words[STATE] == _FILLING:
            words[STATE] = _BROKEN  # parties of an ending process leave a filling round
        elif words[COUNT] == 0:
            words[STATE] = _FILLING
        state.wake_all()


def promote_barrier(barrier: Barrier) -> tuple[Any, ...]:
    """Share ``barrier``; return what pickles it. Parties waiting here at that moment are
    woken and wait again on the shared barrier (counted in already)."""
    if barrier._shared is None:
        with barrier._cond:
            if barrier._shared is None:
                count, phase = barrier._count, barrier._state
                state = SharedState.create("barrier")
                words = state.words
                words[COUNT] = count
                words[STATE] = phase
                if count:
                    with state.guard:
                        state.slots.add(count)
                state.release_mine = _release_mine_parties
                state.rebuild = _rebuild_parties
                barrier.__dict__.pop("_count", None)
                barrier.__dict__.pop("_state", None)
                barrier._shared = state
                barrier.__class__ = SharedBarrier
                with _known_lock:
                    _known[state.prefix] = barrier
                barrier._cond.notify_all()
    return barrier.__reduce__()


def _rebuild_barrier(
    parties: int, action: Any, timeout: float | None, prefix: str
) -> Any:
    with _known_lock:
        obj = _known.get(prefix)
        if obj is not None:
            return obj
    state = SharedState.open(prefix, "plait.Barrier")
    state.what = "barrier"
    state.release_mine = _release_mine_parties
    state.rebuild = _rebuild_parties
    barrier = SharedBarrier.__new__(SharedBarrier)
    cond = Condition()
    cond._park_on = barrier
    barrier.__dict__.update(
        _cond=cond, _parties=parties, _action=action, _timeout=timeout, _shared=state
    )
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:
            return known
        _known[prefix] = barrier
    return barrier


# A process strand's cancellation (SIGTERM) waits until these return: each changes shared
# counts in several steps, and a ``finally`` or ``except`` calls them.
defer_in(SharedBarrier._abandon, whole_call=True)
defer_in(SharedBarrier._timed_out, whole_call=True)
defer_in(SharedBarrier._trip_shared)
