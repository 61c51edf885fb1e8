"""Condition and Barrier across processes: the shared forms and their promotion.

A :class:`SharedCondition` keeps its lock's semaphore and adds three (see its docstring for
the announce / wake / ack handshake); a :class:`SharedBarrier` runs the in-process state
machine unchanged over a shared condition, with its count and phase kept in two
semaphores. The backend (names, lifetime, waiting per strand kind) is ``_xproc``; the
lock-like shared classes and :func:`promote` are ``_shared``.
"""

from __future__ import annotations

import time
from typing import Any

from plait._core import current_strand, safepoint
from plait._ipc.lifeline import pid_alive
from plait._sync._barrier import Barrier
from plait._sync._common import MIGRATED
from plait._sync._condition import Condition
from plait._sync._shared import _known, _known_lock, _waiting, promote
from plait._sync._stats import ConditionStatistics
from plait._sync._xproc import (
    SEM_MAX,
    SharedState,
    bridge,
    defer_in,
    retire_waiters,
    sem_wait,
)

__all__ = ["SharedBarrier", "SharedCondition", "promote_barrier", "promote_condition"]

_monotonic = time.monotonic

_ACK_LIMIT = 5.0  # how long notify waits in all for a woken waiter that does not take it
_ACK_SLICE = 0.02  # between two slices, notify looks for waiters whose process died
_WITHDRAW_LIMIT = 1.0  # a notifier posts a wake right after it took an announcement


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

    Each process counts its waiting strands beside the semaphores (see ``_robust``): a
    waiter whose process died is retired by the next ``notify`` (its announcement, or the
    wake posted for it, taken back), which costs that notify a liveness check, never a
    wait for an ack that cannot come.
    """

    _shared: SharedState

    def wait(self, timeout: float | None = None) -> bool:
        me = current_strand()
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = None if timeout is None else (timeout if timeout > 0 else 0.0)
        state = self._shared
        record = state.record
        slot = record.slot()
        _sleepers, wake, acks = state.sems
        got: list[bool] = []

        def took() -> None:  # (inside the take's critical section)
            acks.release()
            record.add(slot, -1)
            got.append(True)

        saved: Any = None
        waiting = completed = False
        withdrawn: list[bool] = []
        try:
            safepoint.enter()  # announced, counted and the lock let go: all or nothing
            try:
                state.sems[0].release()  # announce, while holding the lock
                record.add(slot, 1)
                saved = self._release_save(me)
                waiting = True
            finally:
                safepoint.leave()
            sem_wait(state, wake, self, wait, None, took)
            completed = True
        finally:
            if waiting:
                try:
                    if not got:
                        self._withdraw(slot, withdrawn)
                finally:
                    try:
                        self._acquire_restore(saved, me)
                    finally:
                        if not completed and (got or withdrawn):
                            self._notify(1)  # notified, but cancelled: hand it on
        return bool(got or withdrawn)

    def _withdraw(self, slot: int, notified: list[bool]) -> None:
        """Take the announcement back; note in ``notified`` if a notify counted us already."""
        sleepers, wake, acks = self._shared.sems
        with safepoint.critical():
            self._shared.record.add(slot, -1)
            if sleepers.acquire(False):
                return
            # the notifier posts our wake right after it took our announcement
            if wake.acquire(True, _WITHDRAW_LIMIT):
                acks.release()
                notified.append(True)

    async def _async_wait(self, me: Any, timeout: float | None) -> bool:
        if not self._is_owned(me):
            raise RuntimeError("cannot wait on un-acquired lock")
        wait = None if timeout is None else (timeout if timeout > 0 else 0.0)
        gate = bridge(self, index=1, ack=2)
        handed: list[object] = []
        cancel: BaseException | None = None
        record = self._shared.record
        slot = record.slot()
        with safepoint.critical():
            self._shared.sems[0].release()  # announce, while holding the lock
            record.add(slot, 1)
            saved = self._release_save(me)
        try:
            notified = bool(await gate.wait(wait, handed.append))
        except BaseException as exc:  # cancelled; maybe after it was handed a wake
            cancel = exc
            notified = bool(handed)
        if not notified:
            notified, again = await self._async_withdraw(gate)
            cancel = cancel or again
        record.add(slot, -1)
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
        state = self._shared
        sleepers, wake, acks = state.sems
        if _gone(state):  # a quick look first: no announcement of a dead waiter is taken
            _retire_dead(state)
        woken = 0
        with safepoint.critical():  # an announcement taken is a wake posted
            while woken < n and sleepers.acquire(False):
                wake.release()
                woken += 1
        deadline = _monotonic() + _ACK_LIMIT
        while woken > 0:
            if acks.acquire(True, _ACK_SLICE):
                woken -= 1
                continue
            # a woken waiter is slow, or dead: retire the dead (taking back what they
            # were posted); a live one gets up to _ACK_LIMIT in all
            woken -= _retire_dead(state)
            if _monotonic() > deadline:
                break  # a live waiter that does not run (stopped?): do not hang on it

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


def _gone(state: SharedState) -> bool:
    """Whether a process with waiters counted here no longer exists (a cheap check)."""
    return any(not pid_alive(pid) for pid in state.record.pids_counted())


def _retire_dead(state: SharedState) -> int:
    """Retire the waiters of processes that died; return how many wakes were taken back
    (acks that will never come)."""
    record = state.record
    dead = record.dead()
    if not dead:
        return 0
    taken = 0
    with safepoint.critical(), record.claim():
        for slot, tag, _count in dead:
            taken += retire_waiters(state, record.clear_slot(slot, tag))
    return taken


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
            state = SharedState.create("waiters", [(0, SEM_MAX), (0, SEM_MAX), (0, SEM_MAX)])
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
    state = SharedState.open(prefix, [SEM_MAX, SEM_MAX, SEM_MAX], "plait.Condition", "waiters")
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
                state = SharedState.create("", [(count, SEM_MAX), (phase + 2, 3)])
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
    state = SharedState.open(prefix, [SEM_MAX, 3], "plait.Barrier", "")
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


# A process strand's cancellation (SIGTERM) waits until these return: each changes shared
# counts in several steps (and a ``finally`` calls some, where a critical section could
# only start after the cancellation had landed). ``_leave`` and ``_break`` notify too: a
# cancellation may not land before the waiters they release are told (a notify ends by
# itself: at most its ack limit).
defer_in(Barrier._arrive)
defer_in(SharedCondition._withdraw)
defer_in(_set_value)
defer_in(Barrier._leave, whole_call=True)
defer_in(Barrier._break, whole_call=True)
