"""A select parked in a cancel scope wakes at once when another strand cancels the scope.

Threads and coroutines, on a queue get, a put and an Event; every case is withdrawn and
nothing a case was handed is lost, even when the cancel races a case firing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from plait._channels import Queue, async_select, select
from plait._core import CancelScope, move_on_after
from plait._errors import Cancelled
from plait._sync import Event
from plait.testing import async_wait_parked, wait_parked

JOIN_S = 10.0  # a select that missed the cancel would wait forever: fail, do not hang
LONG = 30.0  # (and its thread still ends, later)


class Cases:
    """One of each kind of case, none ready: an empty queue, a full one, an unset Event."""

    def __init__(self) -> None:
        self.empty: Queue[int] = Queue()
        self.full: Queue[int] = Queue(1)
        self.full.put(0)
        self.event = Event()

    def pick(self, kind: str) -> list[Any]:
        other: Queue[int] = Queue()  # a second case that never fires
        self.other = other
        case = {
            "get": self.empty.get_op(),
            "put": self.full.put_op(1),
            "event": self.event,
        }[kind]
        return [case, other.get_op()]

    def check_untouched(self) -> None:
        """Nothing taken, nothing put, no waiter left behind."""
        for q in (self.empty, self.full, self.other):
            stats = q.statistics()
            assert stats.getters_waiting == 0 and stats.putters_waiting == 0
        assert self.full.get_nowait() == 0 and self.full.empty()
        self.empty.put(5)
        assert self.empty.get_nowait() == 5
        assert self.event.statistics().waiting == 0


def _in_thread(fn: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=fn)
    t.start()
    return t


@pytest.mark.parametrize("kind", ["get", "put", "event"])
def test_thread_select_wakes_when_another_thread_cancels(kind: str) -> None:
    cases = Cases()
    scopes: list[CancelScope] = []
    out: list[Any] = []

    def run() -> None:
        with CancelScope() as scope:
            scopes.append(scope)
            try:
                out.append(select(*cases.pick(kind), timeout=LONG))
            except Cancelled:
                out.append("cancelled")
                raise
        out.append(scope.cancelled_caught)

    t = _in_thread(run)
    wait_parked(count=1)
    scopes[0].cancel()
    t.join(JOIN_S)
    assert not t.is_alive(), "the select did not see the cancel"
    assert out == ["cancelled", True]
    cases.check_untouched()


@pytest.mark.parametrize("kind", ["get", "put", "event"])
def test_thread_select_wakes_when_a_coroutine_cancels(kind: str) -> None:
    cases = Cases()
    scopes: list[CancelScope] = []
    out: list[Any] = []

    def run() -> None:
        with CancelScope() as scope:
            scopes.append(scope)
            select(*cases.pick(kind), timeout=LONG)
        out.append(scope.cancelled_caught)

    t = _in_thread(run)

    async def canceller() -> None:
        await asyncio.to_thread(wait_parked, count=1)
        scopes[0].cancel()

    asyncio.run(canceller())
    t.join(JOIN_S)
    assert not t.is_alive()
    assert out == [True]
    cases.check_untouched()


def test_thread_select_in_a_scope_already_cancelled() -> None:
    cases = Cases()
    with CancelScope() as scope:
        scope.cancel()
        select(*cases.pick("get"), timeout=LONG)
    assert scope.cancelled_caught
    cases.check_untouched()


def test_scope_deadline_still_ends_a_thread_select() -> None:
    cases = Cases()
    with move_on_after(0.02) as scope:
        select(*cases.pick("event"), timeout=LONG)
    assert scope.cancelled_caught
    cases.check_untouched()


def test_outer_scope_cancel_reaches_past_an_inner_one() -> None:
    cases = Cases()
    scopes: list[CancelScope] = []
    out: list[Any] = []

    def run() -> None:
        with CancelScope() as outer:
            with CancelScope() as inner:
                scopes.append(outer)
                select(*cases.pick("get"), timeout=LONG)
            out.append("inner exited normally")
        out.append((outer.cancelled_caught, inner.cancelled_caught))

    t = _in_thread(run)
    wait_parked(count=1)
    scopes[0].cancel()
    t.join(JOIN_S)
    assert out == [(True, False)]
    cases.check_untouched()


@pytest.mark.parametrize("kind", ["get", "put", "event"])
async def test_coroutine_select_cancelled_from_a_thread(kind: str) -> None:
    cases = Cases()
    scopes: list[CancelScope] = []

    async def body() -> bool:
        async with CancelScope() as scope:
            scopes.append(scope)
            await async_select(*cases.pick(kind), timeout=LONG)
        return scope.cancelled_caught

    task = asyncio.ensure_future(body())
    await async_wait_parked(count=1)
    t = _in_thread(scopes[0].cancel)
    assert await asyncio.wait_for(task, JOIN_S) is True
    t.join()
    cases.check_untouched()


@pytest.mark.parametrize("kind", ["get", "put", "event"])
async def test_coroutine_select_cancelled_from_its_loop(kind: str) -> None:
    cases = Cases()
    scopes: list[CancelScope] = []

    async def body() -> bool:
        async with CancelScope() as scope:
            scopes.append(scope)
            await async_select(*cases.pick(kind), timeout=LONG)
        return scope.cancelled_caught

    task = asyncio.ensure_future(body())
    await async_wait_parked(count=1)
    scopes[0].cancel()
    assert await asyncio.wait_for(task, JOIN_S) is True
    cases.check_untouched()


# -- a cancel racing a case that fires: nothing is lost ------------------------------------

ROUNDS = 60


def _race_thread_get(i: int) -> None:
    q: Queue[int] = Queue()
    other: Queue[int] = Queue()
    scopes: list[CancelScope] = []
    got: list[int] = []

    def run() -> None:
        with CancelScope() as scope:
            scopes.append(scope)
            got.append(select(q.get_op(), other.get_op(), timeout=LONG).value)

    t = _in_thread(run)
    wait_parked(count=1)
    racer = _in_thread(lambda: q.put(i))
    scopes[0].cancel()
    racer.join()
    t.join(JOIN_S)
    assert not t.is_alive()
    # the item is either the select's or still queued: never both, never neither
    assert got + [q.get_nowait() for _ in range(q.qsize())] == [i]
    assert q.statistics().getters_waiting == 0


def test_thread_cancel_racing_a_get_loses_nothing() -> None:
    for i in range(ROUNDS):
        _race_thread_get(i)


def _race_thread_put(i: int) -> None:
    q: Queue[int] = Queue(1)
    q.put(-1)
    other: Queue[int] = Queue()
    scopes: list[CancelScope] = []
    done: list[bool] = []

    def run() -> None:
        with CancelScope() as scope:
            scopes.append(scope)
            select(q.put_op(i), other.get_op(), timeout=LONG)
            done.append(True)

    t = _in_thread(run)
    wait_parked(count=1)
    racer = _in_thread(q.get)  # frees the slot the select waits for
    scopes[0].cancel()
    racer.join()
    t.join(JOIN_S)
    assert not t.is_alive()
    left = [q.get_nowait() for _ in range(q.qsize())]
    assert left == ([i] if done else [])
    assert q.statistics().putters_waiting == 0


def test_thread_cancel_racing_a_put_loses_nothing() -> None:
    for i in range(ROUNDS):
        _race_thread_put(i)


async def _race_coroutine_get(i: int) -> None:
    q: Queue[int] = Queue()
    other: Queue[int] = Queue()
    scopes: list[CancelScope] = []
    got: list[int] = []

    async def body() -> None:
        async with CancelScope() as scope:
            scopes.append(scope)
            got.append((await async_select(q.get_op(), other.get_op(), timeout=LONG)).value)

    task = asyncio.ensure_future(body())
    await async_wait_parked(count=1)
    racer = _in_thread(lambda: q.put(i))
    scopes[0].cancel()
    await asyncio.wait_for(task, JOIN_S)
    racer.join()
    assert got + [q.get_nowait() for _ in range(q.qsize())] == [i]
    assert q.statistics().getters_waiting == 0


async def test_coroutine_cancel_racing_a_get_loses_nothing() -> None:
    for i in range(ROUNDS):
        await _race_coroutine_get(i)


def test_cancelling_a_thread_strand_of_a_task_group_wakes_its_select() -> None:
    from plait._tasks import TaskGroup

    q: Queue[int] = Queue()
    with TaskGroup() as tg:
        task = tg.spawn(lambda: select(q.get_op(), timeout=LONG), on="thread")
        wait_parked(strands=[task])
        task.cancel()
    assert task.cancelled()
    assert q.statistics().getters_waiting == 0


# -- a case whose withdrawal fails: the case that won still gives back what it was handed --


class _Kept:
    """A case that is handed a value (``fire("kept")``) by another thread, and counts the
    values given back to it."""

    def __init__(self) -> None:
        self.armed: Any = None
        self.given_back: list[Any] = []

    def poll(self) -> tuple[bool, Any]:
        return False, None

    def arm(self, arm: Any) -> None:
        self.armed = arm

    def disarm(self, arm: Any) -> None:
        pass

    def finish(self, value: Any) -> Any:
        return value

    def undo(self, value: Any) -> None:
        self.given_back.append(value)

    def __select_case__(self) -> _Kept:
        return self


class _FailsToWithdraw(_Kept):
    """A case whose withdrawal raises (as a shared queue's did when a cancel scope's
    deadline passed while it took the queue's lock to withdraw)."""

    def disarm(self, arm: Any) -> None:
        raise Cancelled("withdrawal interrupted")


def test_a_failed_withdrawal_gives_back_what_the_winning_thread_case_was_handed() -> None:
    kept, failing = _Kept(), _FailsToWithdraw()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            select(kept, failing, timeout=LONG)
        except BaseException as exc:
            errors.append(exc)

    t = _in_thread(run)
    wait_parked(count=1)
    assert kept.armed.fire("kept")
    t.join(JOIN_S)
    assert not t.is_alive()
    assert [type(e) for e in errors] == [Cancelled]
    assert kept.given_back == ["kept"]  # not stranded: the select never returned it


async def test_a_failed_withdrawal_gives_back_what_the_winning_coroutine_case_was_handed() -> None:
    kept, failing = _Kept(), _FailsToWithdraw()
    task = asyncio.ensure_future(async_select(kept, failing, timeout=LONG))
    await async_wait_parked(count=1)
    assert kept.armed.fire("kept")
    with pytest.raises(Cancelled):
        await asyncio.wait_for(task, JOIN_S)
    assert kept.given_back == ["kept"]
