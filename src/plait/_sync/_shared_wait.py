"""Condition's and Barrier's shared backends (the seam itself is ``_shared``).

A :class:`ConditionBackend` has a segment of its own (``_xproc``) beside its lock's: its
waiters announce themselves in its wait table and park; ``notify(n)`` rings up to ``n`` of
them. A :class:`BarrierBackend` keeps the barrier's count, phase and trip generation, and
each process's parties counted in, in its own segment, all changed under its robust mutex.
Like every backend, these know the public object only as what a strand parks on and the
few fields and calls they are handed: they neither subclass nor import the public classes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from plait._core import current_strand, hooks, safepoint
from plait._errors import BrokenBarrierError
from plait._ipc.promotion import register_backend
from plait._sync._common import BROKEN, DRAINING, FILLING, RESETTING
from plait._sync._shared import Backend
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

__all__ = ["BarrierBackend", "ConditionBackend"]


@register_backend
class ConditionBackend(Backend):
    """A shared ``Condition`` (over a shared lock): its wait table.

    A waiter announces itself in the table (its mutex held, while it still holds the
    lock, so a notify made after it let the lock go always finds it), lets the lock go
    and parks; ``notify(n)`` rings up to ``n`` announced waiters, in any process, and
    ``notify_all()`` every one. A waiter that times out withdraws its announcement; one
    that was rung and then cancelled passes its ring on (no notification is swallowed).
    A waiter whose process died costs a notify one failed ring (its doorbell is gone),
    never a wait.
    """

    __slots__ = ()
    kind = "condition"

    @classmethod
    def adopt(cls, obj: Any) -> tuple[Backend, dict[str, Any]]:
        return cls.create("condition"), {}

    @classmethod
    def attach(cls, prefix: str, obj: Any) -> tuple[Backend, dict[str, Any]]:
        name = f"plait.{type(obj).__name__}"
        backend = cls.open(prefix, name)
        backend.what = "condition"
        return backend, {}

    def _announce(self, cond: Any, me: Any, coroutine: bool) -> tuple[Any, Any]:
        """Announce the calling strand and let ``cond``'s lock go, all or nothing;
        ``(waiter, saved lock state)``."""
        room = self.room
        waiter: Any = None
        saved: Any = None
        released = done = False
        safepoint.enter()
        try:
            with self.guard:
                waiter = room.enqueue(0, cond._park_on, coroutine)
            saved = cond._release_save(me)
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
                        cond._acquire_restore(saved, me)
        return waiter, saved

    def wait(self, cond: Any, me: Any, wait: float | None) -> bool:
        """``cond.wait`` once shared (``me`` holds the lock; ``wait``: checked seconds)."""
        waiter, saved = self._announce(cond, me, False)
        try:
            return bool(self.room.park(waiter, 0, wait))
        finally:
            cond._acquire_restore(saved, me)

    async def async_wait(self, cond: Any, me: Any, wait: float | None) -> bool:
        waiter, saved = self._announce(cond, me, True)
        try:
            return bool(await self.room.async_park(waiter, 0, wait))
        finally:
            cancelled: BaseException | None = None
            while True:  # re-take the lock whatever happens, as asyncio.Condition does
                try:
                    await cond._lock._plait_async_acquire_restore(saved, me)
                    break
                except BaseException as exc:
                    cancelled = cancelled or exc
            if cancelled is not None:
                raise cancelled

    def notify(self, n: int) -> None:
        with self.guard:
            self.wake(0, n)

    def notify_all(self) -> None:
        with self.guard:
            self.wake_all()


# -- barriers ---------------------------------------------------------------------------


class _Party:
    """One call of a shared barrier's wait: where it is in the barrier's round."""

    __slots__ = ("gen", "index", "trip")

    def __init__(self) -> None:
        self.index = -1  # counted in: its arrival index
        self.gen = 0
        self.trip = False  # the last to arrive: it trips the barrier


def _rebuild_parties(state: SharedState) -> None:
    """(mutex held, after a holder died inside it) The count is the parties counted in."""
    state.words[COUNT] = max(0, state.slots.total())


def _release_mine_parties(state: SharedState) -> None:
    held = state.slots.take_mine()
    if held > 0:
        words = state.words
        words[COUNT] = max(0, words[COUNT] - held)
        if words[STATE] == FILLING:
            words[STATE] = BROKEN  # parties of an ending process leave a filling round
        elif words[COUNT] == 0:
            words[STATE] = FILLING
        state.wake_all()


@register_backend
class BarrierBackend(Backend):
    """A shared ``Barrier``: its count, phase and trip generation, and each process's
    parties counted in (changed under its mutex). The parties, action and timeout stay
    in the public object (every process has them from the pickle).

    A party that died while counted in breaks the barrier (everyone waiting gets
    :class:`threading.BrokenBarrierError`); ``reset()`` drops dead parties from the count.
    Every wait, the wait for a draining or resetting round to settle included, is bounded
    by the party's timeout.
    """

    __slots__ = ()
    kind = "barrier"

    @classmethod
    def adopt(cls, obj: Any) -> tuple[Backend, dict[str, Any]]:
        count, phase = obj._count, obj._state
        backend = cls.create("barrier")
        words = backend.words
        words[COUNT] = count
        words[STATE] = phase
        if count:
            with backend.guard:
                backend.slots.add(count)
        backend._set_up()
        return backend, {}

    @classmethod
    def attach(cls, prefix: str, obj: Any) -> tuple[Backend, dict[str, Any]]:
        name = f"plait.{type(obj).__name__}"
        backend = cls.open(prefix, name)
        backend.what = "barrier"
        backend._set_up()
        return backend, {}

    def _set_up(self) -> None:
        self.release_mine = _release_mine_parties
        self.rebuild = _rebuild_parties

    # -- reading (a snapshot each) -----------------------------------------------------

    def count(self) -> int:
        return int(self.words[COUNT])

    def phase(self) -> int:
        return int(self.words[STATE])

    # -- (mutex held) ------------------------------------------------------------------

    def _break(self) -> None:
        self.words[STATE] = BROKEN
        self.wake_all()

    def _leave(self) -> None:
        """A party leaves its round: un-counted first, then out of the count."""
        words = self.words
        self.slots.add(-1)
        words[COUNT] = max(0, words[COUNT] - 1)
        if words[COUNT] == 0 and words[STATE] in (RESETTING, DRAINING):
            words[STATE] = FILLING
            self.wake_all()

    def _drop_dead(self, breaks: bool) -> bool:
        """Take dead processes' parties out of the count; break the barrier if one died
        counted in while it filled (``breaks``). Whether any were found."""
        words = self.words
        dead = sum(n for _tag, n in self.slots.take_dead() if n > 0)
        if not dead:
            return False
        words[COUNT] = max(0, words[COUNT] - dead)
        if breaks and words[STATE] == FILLING:
            words[STATE] = BROKEN
        if words[COUNT] == 0 and words[STATE] in (RESETTING, DRAINING):
            words[STATE] = FILLING
        self.wake_all()
        return True

    def _attempt(self, party: _Party, parties: int) -> Callable[[bool], Any]:
        words = self.words

        def attempt(suspect: bool) -> Any:
            if party.index < 0:  # not counted in yet: wait for a filling round
                if suspect:
                    self._drop_dead(breaks=True)
                phase = words[STATE]
                if phase == BROKEN:
                    raise BrokenBarrierError
                if phase != FILLING or words[COUNT] >= parties:
                    return NOT_YET
                self.slots.add(1)
                index = int(words[COUNT])
                words[COUNT] = index + 1
                party.index, party.gen = index, int(words[GEN])
                if index + 1 == parties:
                    party.trip = True
                    return index
                return NOT_YET
            if words[GEN] != party.gen:  # tripped: pass
                self._leave()
                return party.index
            if words[STATE] != FILLING:  # broken, or reset while it waited
                self._leave()
                party.index = -2
                raise BrokenBarrierError
            if suspect and self._drop_dead(breaks=True):
                self._leave()
                party.index = -2
                raise BrokenBarrierError
            return NOT_YET

        return attempt

    # -- the steps of a party's wait (each takes the mutex itself) ---------------------

    def _trip(self, party: _Party, action: Callable[[], object] | None) -> int:
        """The last party arrived: run the action (outside the mutex), then let every party
        go, or break the barrier if the action raised."""
        try:
            if action is not None:
                action()
        except BaseException:
            with self.guard:
                self._break()
                self._leave()
            raise
        with self.guard:
            words = self.words
            words[STATE] = DRAINING
            words[GEN] += 1
            self.wake_all()
            self._leave()
        return party.index

    def _timed_out(self, party: _Party) -> None:
        """The party's timeout passed: break the barrier (threading's rule), leave it."""
        with self.guard:
            if party.index >= 0:
                if self.words[GEN] == party.gen and self.words[STATE] == FILLING:
                    self._break()
                self._leave()
            party.index = -2
        raise BrokenBarrierError

    def _abandon(self, party: _Party) -> None:
        """A cancelled party leaves the round it was counted in (if any)."""
        if party.index >= 0:
            with self.guard:
                self._leave()
            party.index = -2

    def leave(self) -> None:
        """A party counted in locally before the promotion leaves (cancelled, or failed)."""
        with self.guard:
            self._leave()

    # -- waiting: one loop, driven by a thread or by a coroutine ------------------------

    def _waits(
        self, barrier: Any, party: _Party, deadline: float | None, coroutine: bool
    ) -> Generator[Any, Any, int]:
        """The party's whole wait: it yields the wait's awaitable-or-result step (a
        coroutine driver awaits it; a thread's gets it back done) and returns the index."""
        try:
            wait = (async_block if coroutine else block)(
                self, barrier, self._attempt(party, barrier._parties), deadline,
                self.slots.holders,
            )  # fmt: skip
            got = yield wait
            if got is NOT_YET:
                self._timed_out(party)
            if party.trip:
                got = self._trip(party, barrier._action)
        except BrokenBarrierError:
            raise
        except BaseException:
            self._abandon(party)
            raise
        if hooks.active:
            hooks.acquired(current_strand(), barrier)
        return int(got)

    def wait_as(self, barrier: Any, party: _Party, deadline: float | None) -> int:
        steps = self._waits(barrier, party, deadline, False)
        return _finish(steps, next(steps))  # (a thread parked inside ``block`` already)

    async def async_wait_as(self, barrier: Any, party: _Party, deadline: float | None) -> int:
        steps = self._waits(barrier, party, deadline, True)
        wait = next(steps)
        try:
            got = await wait
        except BaseException as exc:
            steps.throw(exc)  # (the loop gives the party's place back, and re-raises)
            raise
        return _finish(steps, got)

    def wait(self, barrier: Any, timeout: float | None) -> int:
        """``barrier.wait`` once shared (``timeout``: checked seconds, ``None``: none)."""
        return self.wait_as(barrier, _Party(), deadline_of(timeout))

    async def async_wait(self, barrier: Any, timeout: float | None) -> int:
        return await self.async_wait_as(barrier, _Party(), deadline_of(timeout))

    # -- parties that waited locally before the barrier was shared ---------------------

    def _moved(self, barrier: Any, index: int) -> _Party | int:
        """The shared party of a local one counted in as ``index`` before the promotion
        (a fresh segment: generation 0), or its index if the barrier tripped then."""
        party = _Party()
        party.index, party.gen = index, 0
        with self.guard:
            if self.words[GEN] == 0 and self.words[STATE] == DRAINING:
                self._leave()  # it tripped before the promotion: pass
                if hooks.active:
                    hooks.acquired(current_strand(), barrier)
                return index
        return party

    def moved_wait(self, barrier: Any, index: int, timeout: float | None) -> int:
        """Go on with a local party's wait here (``index < 0``: not counted in yet)."""
        if index < 0:
            return self.wait(barrier, timeout)
        party = self._moved(barrier, index)
        if isinstance(party, int):
            return party
        return self.wait_as(barrier, party, deadline_of(timeout))

    async def async_moved_wait(self, barrier: Any, index: int, timeout: float | None) -> int:
        if index < 0:
            return await self.async_wait(barrier, timeout)
        party = self._moved(barrier, index)
        if isinstance(party, int):
            return party
        return await self.async_wait_as(barrier, party, deadline_of(timeout))

    # -- control -----------------------------------------------------------------------

    def reset(self) -> None:
        with self.guard:
            self._drop_dead(breaks=False)
            words = self.words
            if words[COUNT] > 0:
                if words[STATE] in (FILLING, BROKEN):
                    words[STATE] = RESETTING
            else:
                words[STATE] = FILLING
            self.wake_all()

    def abort(self) -> None:
        with self.guard:
            self._break()


def _finish(steps: Generator[Any, Any, int], got: Any) -> int:
    """Send a barrier wait's loop what its wait returned; what the loop returns."""
    try:
        steps.send(got)
    except StopIteration as done:
        return int(done.value)
    raise AssertionError("a barrier's wait loop yields once")  # pragma: no cover


# A process strand's cancellation (SIGTERM) waits until these return: each changes shared
# counts in several steps, and a ``finally`` or ``except`` calls them.
defer_in(BarrierBackend._abandon, whole_call=True)
defer_in(BarrierBackend._timed_out, whole_call=True)
defer_in(BarrierBackend._trip)
