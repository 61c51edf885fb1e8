"""Deadlock detection in one process: a wait that closes a cycle of untimed waits raises
``DeadlockError`` naming every strand, object and line; nothing else ever does."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import plait
from plait.diagnostics import WaitLink
from plait.testing import wait_parked

# These tests take locks in opposite orders on purpose: under PLAIT_DEBUG=1 lockdep says so.
pytestmark = [pytest.mark.timeout(30), pytest.mark.filterwarnings("ignore::plait.LockOrderWarning")]


@pytest.fixture
def debug_mode() -> Iterator[None]:
    was = plait.debug(True)
    try:
        yield
    finally:
        plait.debug(was)


class Outcome:
    """What each side of a two-strand test ended with."""

    def __init__(self) -> None:
        self.errors: dict[str, BaseException] = {}
        self.done: set[str] = set()

    def run(self, name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # recorded for the test to assert
                self.errors[name] = exc
            else:
                self.done.add(name)

        return body


def _threads(*targets: tuple[str, Callable[[], None]]) -> list[plait.Thread]:
    threads = [plait.Thread(target=fn, name=name) for name, fn in targets]
    for t in threads:
        t.start()
    return threads


def _join(threads: list[plait.Thread]) -> None:
    for t in threads:
        t.join(10)
        assert not t.is_alive(), f"{t.name} is still blocked: the deadlock was not broken"


def _opposite_order(lock_type: Callable[[], Any]) -> tuple[Outcome, Any, Any]:
    out = Outcome()
    first, second = lock_type(), lock_type()
    holding = threading.Barrier(2, timeout=10)

    def one() -> None:
        with first:
            holding.wait()
            with second:  # line "one waits"
                pass

    def two() -> None:
        with second:
            holding.wait()
            wait_parked(on=second, count=1)  # one is parked: two closes the cycle
            with first:
                pass

    _join(_threads(("one", out.run("one", one)), ("two", out.run("two", two))))
    return out, first, second


def test_thread_thread_plain_lock_cycle_raises_by_default() -> None:
    """The seed's deadlock with plain Locks, detection in its default mode: the fast path
    records only the taking thread, which the detector resolves to its strand."""
    assert not plait.debug()
    out, _, _ = _opposite_order(plait.Lock)
    assert out.done == {"one"}
    error = out.errors["two"]
    assert isinstance(error, plait.DeadlockError)
    assert "'one'" in str(error) and "'two'" in str(error)
    assert [link.strand.split("'")[1] for link in error.cycle] == ["two", "one"]


def test_thread_thread_rlock_cycle_raises_in_the_closing_wait() -> None:
    out, _, _ = _opposite_order(plait.RLock)
    assert out.done == {"one"}
    error = out.errors["two"]
    assert isinstance(error, plait.DeadlockError)
    text = str(error)
    assert "'one'" in text and "'two'" in text
    assert "'first'" in text and "'second'" in text
    assert "test_deadlock.py" in text
    assert len(error.cycle) == 2
    assert all(isinstance(link, WaitLink) for link in error.cycle)
    assert [link.strand.split("'")[1] for link in error.cycle] == ["two", "one"]


def test_thread_thread_lock_cycle_in_debug_mode_names_where_locks_were_taken(
    debug_mode: None,
) -> None:
    out, _, _ = _opposite_order(plait.Lock)
    error = out.errors["two"]
    assert isinstance(error, plait.DeadlockError)
    assert out.done == {"one"}
    taken = [link.taken_at for link in error.cycle]
    assert all("test_deadlock.py" in site for site in taken), taken
    assert "taken at" in str(error)


def test_the_error_pickles() -> None:
    out, _, _ = _opposite_order(plait.RLock)
    error = out.errors["two"]
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, plait.DeadlockError)
    assert again.cycle == error.cycle
    assert str(again) == str(error)


def test_rlock_reentry_is_not_a_deadlock_and_a_reentered_rlock_still_links() -> None:
    out = Outcome()
    rlock, other = plait.RLock(), plait.RLock()
    holding = threading.Barrier(2, timeout=10)

    def one() -> None:
        with rlock, rlock:  # re-entered: never a wait on itself
            holding.wait()
            with other:
                pass

    def two() -> None:
        with other:
            holding.wait()
            wait_parked(on=other, count=1)
            with rlock:
                pass

    _join(_threads(("one", out.run("one", one)), ("two", out.run("two", two))))
    assert out.done == {"one"}
    assert isinstance(out.errors["two"], plait.DeadlockError)


def test_condition_wait_relock_closes_a_cycle() -> None:
    out = Outcome()
    cond = plait.Condition(plait.RLock())
    other = plait.RLock()
    waiting = threading.Event()

    def one() -> None:  # holds `other`, waits on the condition, must re-take its lock
        with other, cond:
            waiting.set()
            cond.wait()

    def two() -> None:  # takes the condition's lock, notifies, then wants `other`
        assert waiting.wait(10)
        wait_parked(on=cond, count=1)
        with cond:
            cond.notify()
            other.acquire()
            other.release()

    threads = _threads(("one", out.run("one", one)), ("two", out.run("two", two)))
    _join(threads)
    errors = list(out.errors.values())
    assert len(errors) == 1
    error: BaseException | None = errors[0]
    while error is not None and not isinstance(error, plait.DeadlockError):
        error = error.__context__
    assert isinstance(error, plait.DeadlockError)
    assert "Condition" in str(error) or "RLock" in str(error)


def test_join_cycle_raises() -> None:
    out = Outcome()
    lock = plait.RLock()
    started = threading.Event()
    box: list[plait.Thread] = []

    def worker() -> None:
        started.set()
        with lock:
            pass

    def main_side() -> None:
        with lock:
            t = plait.Thread(target=out.run("worker", worker), name="worker")
            box.append(t)
            t.start()
            assert started.wait(10)
            wait_parked(on=lock, count=1)
            t.join()

    _join(_threads(("joiner", out.run("joiner", main_side))))
    box[0].join(10)
    error = out.errors["joiner"]
    assert isinstance(error, plait.DeadlockError)
    assert "the end of thread 'worker'" in str(error)
    assert out.done == {"worker"}


def test_coroutine_and_thread_cycle() -> None:
    out = Outcome()
    a, b = plait.RLock(), plait.RLock()
    holding = threading.Barrier(2, timeout=10)

    async def coro_side() -> None:
        async with a:
            await asyncio.to_thread(holding.wait)
            async with b:
                pass

    def thread_side() -> None:
        with b:
            holding.wait()
            wait_parked(on=b, count=1)  # the coroutine is parked on b
            with a:
                pass

    threads = _threads(
        ("loop", out.run("coro", lambda: asyncio.run(coro_side()))),
        ("thread", out.run("thread", thread_side)),
    )
    _join(threads)
    assert out.done == {"coro"}
    error = out.errors["thread"]
    assert isinstance(error, plait.DeadlockError)
    text = str(error)
    assert "async" in text and "thread 'thread'" in text
    assert "'a'" in text and "'b'" in text


def test_coroutine_coroutine_cycle_on_two_loops() -> None:
    out = Outcome()
    a, b = plait.RLock(), plait.RLock()
    holding = threading.Barrier(2, timeout=10)

    async def first() -> None:
        async with a:
            await asyncio.to_thread(holding.wait)
            async with b:
                pass

    async def second() -> None:
        async with b:
            await asyncio.to_thread(holding.wait)
            await asyncio.to_thread(wait_parked, on=b, count=1)
            async with a:
                pass

    threads = _threads(
        ("loop1", out.run("first", lambda: asyncio.run(first()))),
        ("loop2", out.run("second", lambda: asyncio.run(second()))),
    )
    _join(threads)
    assert out.done == {"first"}
    error = out.errors["second"]
    assert isinstance(error, plait.DeadlockError)
    assert str(error).count("async") >= 2
    assert "'a'" in str(error) and "'b'" in str(error)


def test_timed_waits_never_raise() -> None:
    out = Outcome()
    first, second = plait.RLock(), plait.RLock()
    holding = threading.Barrier(2, timeout=10)
    got: list[bool] = []

    def one() -> None:
        with first:
            holding.wait()
            got.append(second.acquire(timeout=0.3))  # timed: a link of no cycle

    def two() -> None:
        with second:
            holding.wait()
            wait_parked(on=second, count=1)
            with first:  # waits until one's timed wait gives up and releases `first`
                pass

    _join(_threads(("one", out.run("one", one)), ("two", out.run("two", two))))
    assert out.errors == {}
    assert got == [False]


def test_opt_out_per_object() -> None:
    out = Outcome()
    first, second = plait.RLock(), plait.RLock()
    plait.ignore_deadlocks(first)
    holding = threading.Barrier(2, timeout=10)

    def one() -> None:
        with first:
            holding.wait()
            second.acquire(timeout=2)  # not detected: `first` is ignored; two gives up

    def two() -> None:
        with second:
            holding.wait()
            wait_parked(on=second, count=1)
            if first.acquire(timeout=5):
                first.release()

    _join(_threads(("one", out.run("one", one)), ("two", out.run("two", two))))
    assert out.errors == {}


def test_opt_out_globally() -> None:
    was = plait.detect_deadlocks(False)
    try:
        assert plait.detect_deadlocks() is False
        lock, other = plait.RLock(), plait.RLock()
        holding = threading.Event()

        def one() -> None:
            with lock:
                holding.set()
                with other:  # untimed, other is held by the test
                    pass

        other.acquire()
        t = plait.Thread(target=one, name="one")
        t.start()
        assert holding.wait(10)
        wait_parked(on=other, count=1)
        scope = plait.CancelScope()
        canceller = threading.Thread(
            target=lambda: (wait_parked(on=lock, count=1), scope.cancel()), daemon=True
        )
        canceller.start()
        with scope:
            lock.acquire()  # closes the cycle; with detection off it parks until cancelled
        assert scope.cancel_called
        other.release()
        t.join(10)
        canceller.join(10)
        assert not t.is_alive()
    finally:
        plait.detect_deadlocks(was)
    assert plait.detect_deadlocks() is was


def test_a_blocking_acquire_in_a_coroutine_of_the_holders_loop_raises() -> None:
    lock = plait.RLock()

    async def holder(held: asyncio.Event, done: asyncio.Event) -> None:
        async with lock:
            held.set()
            await done.wait()

    async def main() -> BaseException | None:
        held, done = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(holder(held, done), name="holding-coroutine")
        await held.wait()
        try:
            lock.acquire()  # a blocking call: the holder can never run to release it
        except plait.DeadlockError as exc:
            return exc
        finally:
            done.set()
            await task
        lock.release()
        return None

    error = asyncio.run(main())
    assert isinstance(error, plait.DeadlockError)
    text = str(error)
    assert "'holding-coroutine'" in text
    assert "runs on the event loop this blocking call holds up" in text
    assert "test_deadlock.py" in text
