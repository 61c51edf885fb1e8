"""Green strands (issue 14, point 1): blocking-style code, many per loop, switching at waits.

Each test would hang or fail if a green strand blocked its loop's thread at a plait wait
instead of switching away: two green strands of one loop hand work to each other, and a
coroutine strand on the same loop keeps running while they wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from typing import Any

import pytest

import plait
import plait.testing
from plait._core import Instrument, Strand

pytest.importorskip("greenlet", reason="green strands need the greenlet extra (plait[green])")

pytestmark = pytest.mark.timeout(30)


def run(main: Any) -> Any:
    return plait.run(main)


def test_a_green_strand_is_green_and_returns_its_result() -> None:
    def body(x: int) -> tuple[str, int]:
        return plait.current_strand().kind, x * 2

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            task = tg.spawn(body, 21, on="green")
        return task.result()

    assert run(main) == ("green", 42)


def test_two_green_strands_hand_off_through_an_event_on_one_loop() -> None:
    ev = plait.Event()
    order: list[str] = []

    def waiter() -> str:
        order.append("waiting")
        assert ev.wait(10)
        order.append("woken")
        return "ok"

    def setter() -> None:
        plait.testing.wait_parked(on=ev, count=1, timeout=10)
        order.append("set")
        ev.set()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            a = tg.spawn(waiter, on="green")
            tg.spawn(setter, on="green")
        return a.result()

    assert run(main) == "ok"
    assert order == ["waiting", "set", "woken"]


def test_green_and_coroutine_strands_ping_pong_through_queues() -> None:
    ping: plait.Queue[int] = plait.Queue()
    pong: plait.Queue[int] = plait.Queue()

    def green_side() -> int:
        total = 0
        for _ in range(200):
            n = ping.get(timeout=10)
            total += n
            pong.put(n + 1)
        return total

    async def coro_side() -> int:
        n = 0
        for _ in range(200):
            await ping.async_put(n)
            n = await pong.async_get(timeout=10)
        return n

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            g = tg.spawn(green_side, on="green")
            c = tg.spawn(coro_side)
        return g.result(), c.result()

    assert run(main) == (sum(range(200)), 200)


def test_green_and_thread_strands_share_a_bounded_queue() -> None:
    q: plait.Queue[int | None] = plait.Queue(maxsize=2)

    def producer() -> None:
        for i in range(300):
            q.put(i, timeout=10)
        q.put(None, timeout=10)

    def consumer() -> int:
        total = 0
        while (item := q.get(timeout=10)) is not None:
            total += item
        return total

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            c = tg.spawn(consumer, on="green")
            tg.spawn(producer, on="thread")
        return c.result()

    assert run(main) == sum(range(300))


def test_a_lock_held_across_a_switch_excludes_other_green_strands() -> None:
    lock = plait.Lock()
    inside = [0]
    most = [0]
    count = [0]

    def work() -> None:
        for _ in range(50):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                value = count[0]
                plait.sleep(0)  # a switch point while holding the lock
                count[0] = value + 1
                inside[0] -= 1

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            for _ in range(8):
                tg.spawn(work, on="green")

    run(main)
    assert count[0] == 400
    assert most[0] == 1


def test_a_coroutine_strand_runs_while_a_green_strand_waits() -> None:
    ev = plait.Event()
    ticks: list[int] = []

    def green_wait() -> bool:
        return ev.wait(10)

    async def ticker() -> None:
        for i in range(5):
            ticks.append(i)
            await asyncio.sleep(0)
        ev.set()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            g = tg.spawn(green_wait, on="green")
            await plait.testing.async_wait_parked(on=ev, count=1, timeout=10)
            tg.spawn(ticker)
        return g.result()

    assert run(main) is True
    assert ticks == [0, 1, 2, 3, 4]


def test_move_on_after_ends_a_green_wait() -> None:
    q: plait.Queue[int] = plait.Queue()

    def body() -> bool:
        with plait.move_on_after(0.1) as scope:
            q.get()
        return scope.cancelled_caught

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
        return t.result()

    assert run(main) is True


def test_fail_after_raises_timeout_error_in_a_green_strand() -> None:
    ev = plait.Event()

    def body() -> str:
        try:
            with plait.fail_after(0.1):
                ev.wait()
        except TimeoutError:
            return "timed out"
        return "not reached"

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
        return t.result()

    assert run(main) == "timed out"


def test_a_scope_cancelled_from_another_thread_wakes_a_green_wait() -> None:
    ev = plait.Event()
    scopes: list[plait.CancelScope] = []

    def body() -> bool:
        with plait.CancelScope() as scope:
            scopes.append(scope)
            ev.wait()
        return scope.cancelled_caught

    def canceller() -> None:
        plait.testing.wait_parked(on=ev, count=1, timeout=10)
        scopes[0].cancel()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
            tg.spawn(canceller, on="thread")
        return t.result()

    assert run(main) is True


def test_cancelling_the_group_reaches_a_parked_green_strand_as_cancelled() -> None:
    q: plait.Queue[int] = plait.Queue()
    seen: list[type[BaseException]] = []

    def body() -> None:
        try:
            q.get()
        except BaseException as exc:
            seen.append(type(exc))
            raise

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
            await plait.testing.async_wait_parked(on=q, count=1, timeout=10)
            tg.cancel()
        return t

    task = run(main)
    assert task.cancelled()
    assert seen == [plait.Cancelled]


def test_spawn_timeout_fails_a_green_strand_with_timeout_error() -> None:
    ev = plait.Event()

    async def main() -> Any:
        with pytest.raises(BaseException) as info:  # noqa: PT011 - the group's own error
            async with plait.TaskGroup() as tg:
                tg.spawn(ev.wait, on="green", timeout=0.1)
        return info.value

    error = run(main)
    found = error.exceptions if isinstance(error, BaseExceptionGroup) else (error,)
    assert any(isinstance(e, TimeoutError) for e in found), error


def test_an_error_in_a_green_strand_fails_its_group() -> None:
    def body() -> None:
        plait.sleep(0)
        raise ValueError("boom")

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(body, on="green")

    with pytest.raises(BaseExceptionGroup) as info:
        run(main)
    assert [type(e) for e in info.value.exceptions] == [ValueError]


def test_await_runs_coroutine_code_from_a_green_strand() -> None:
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("inner")

    def body() -> tuple[int, str]:
        value = plait.await_(fetch(1))
        try:
            plait.await_(fails())
        except KeyError as exc:
            return value, str(exc)
        return value, ""

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
        return t.result()

    assert run(main) == (2, "'inner'")


def test_await_outside_a_green_strand_is_a_clear_error() -> None:
    async def coro() -> None:
        pass

    with pytest.raises(RuntimeError, match="green strand"):
        plait.await_(coro())  # (closed: no "never awaited" warning, which would fail here)


def test_context_variables_of_the_spawner_are_seen_in_a_green_strand() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> Any:
        var.set("from the coroutine")
        async with plait.TaskGroup() as tg:
            t = tg.spawn(var.get, on="green")
        return t.result()

    assert run(main) == "from the coroutine"


def test_a_green_strand_spawned_from_a_thread_runs_on_the_background_loop() -> None:
    def body() -> tuple[str, bool]:
        plait.sleep(0.01)
        return plait.current_strand().kind, threading.current_thread() is threading.main_thread()

    with plait.TaskGroup() as tg:
        t = tg.spawn(body, on="green")
    assert t.result() == ("green", False)


def test_a_coroutine_function_cannot_be_a_green_strand() -> None:
    async def coro() -> None:
        pass

    with plait.TaskGroup() as tg, pytest.raises(TypeError, match="awaitable"):
        tg.spawn(coro, on="green")


def test_without_greenlet_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "greenlet", None)  # (import greenlet now fails)
    with plait.TaskGroup() as tg, pytest.raises(ImportError, match=r"plait\[green\]"):
        tg.spawn(print, on="green")


class _Recorder(Instrument):
    def __init__(self) -> None:
        self.events: list[tuple[str, Strand, object]] = []

    def strand_parked(self, strand: Strand, on: object) -> None:
        self.events.append(("parked", strand, on))

    def strand_unparked(self, strand: Strand, on: object, outcome: str) -> None:
        self.events.append((outcome, strand, on))


def _recorded(main: Any, recorder: _Recorder, *, installed: bool) -> list[tuple[str, object]]:
    """Run ``main`` (it returns the task to watch), ``recorder`` installed first or not (and
    removed after, whatever happens); what it heard of that task: (event, on) pairs."""
    if installed:
        plait.add_instrument(recorder)
    try:
        task = run(main)
    finally:
        plait.remove_instrument(recorder)
    return [(kind, on) for kind, strand, on in recorder.events if strand is task]


def test_a_green_wait_is_one_park_and_one_unpark_through_the_kernel() -> None:
    sem = plait.Semaphore(0)
    recorder = _Recorder()

    def body() -> None:
        assert sem.acquire(timeout=10)

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
            await plait.testing.async_wait_parked(on=sem, count=1, timeout=10)
            assert t.state == "parked" and t.parked_on is sem
            sem.release()
        return t

    assert _recorded(main, recorder, installed=True) == [("parked", sem), ("woken", sem)]


@pytest.mark.parametrize("order", ["put-then-cancel", "cancel-then-put"])
def test_an_item_handed_to_a_cancelled_green_getter_is_never_lost(order: str) -> None:
    q: plait.Queue[str] = plait.Queue()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(q.get, on="green")
            await plait.testing.async_wait_parked(on=q, count=1, timeout=10)
            if order == "put-then-cancel":  # (the strand is made ready, then cancelled)
                q.put("item")
                t.cancel()
            else:
                t.cancel()
                q.put("item")
        return t

    task = run(main)
    if task.cancelled():
        assert q.get_nowait() == "item"  # given back, not lost
    else:
        assert task.result() == "item" and q.empty()


def test_pool_calls_from_a_green_strand_let_its_loop_run() -> None:
    ticks: list[str] = []

    def work(pool: plait.Pool) -> Any:
        pool.apply(time.sleep, (0.3,))  # parked on the pool meanwhile
        seen = list(ticks)
        return seen, pool.apply(pow, (2, 10)), list(pool.imap(abs, [-1, -2]))

    async def main() -> Any:
        with plait.Pool(2) as pool:
            async with plait.TaskGroup() as tg:
                t = tg.spawn(work, pool, on="green")
                await plait.testing.async_wait_parked(strands=[t], timeout=10)
                ticks.append("the loop ran while the green strand waited")
            return t.result()

    assert run(main) == (["the loop ran while the green strand waited"], 1024, [1, 2])


@pytest.mark.parametrize("shared", [False, True], ids=["local", "shared"])
def test_a_green_select_on_an_event_is_woken_by_another_green_strand(shared: bool) -> None:
    import pickle

    ev = plait.Event()
    if shared:
        pickle.dumps(ev)  # shares it (as passing it to a process does)
    selecting: list[Any] = []

    def selector() -> int:
        selecting.append(plait.current_strand())
        return plait.select(ev, timeout=10).index

    def setter() -> None:
        while not selecting:
            plait.sleep(0.001)
        plait.testing.wait_parked(strands=selecting, timeout=10)
        ev.set()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(selector, on="green")
            tg.spawn(setter, on="green")
        return t.result()

    assert run(main) == 0


def test_green_strands_waiting_on_the_same_fd_are_all_woken() -> None:
    """The loop holds one reader per fd: two green strands waiting on one socket share it
    (the second must not replace the first's wake-up, nor the first's exit remove both)."""
    import socket

    from plait._core.green import wait_fd

    a, b = socket.socketpair()
    woken: list[str] = []

    def wait_readable(name: str) -> None:
        assert wait_fd(a.fileno(), write=False, timeout=10, on=a)
        woken.append(name)

    def writer() -> None:
        plait.testing.wait_parked(on=a, count=2, timeout=10)
        b.send(b"x")

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(wait_readable, "first", on="green")
            tg.spawn(wait_readable, "second", on="green")
            tg.spawn(writer, on="thread")

    try:
        run(main)
        assert sorted(woken) == ["first", "second"]  # (each wait_fd returned True: woken)
    finally:
        a.close()
        b.close()


def test_two_green_strands_taking_two_locks_in_opposite_order_get_a_deadlock_error() -> None:
    """The seed's deadlock, as green strands of one loop: the wait that closes the cycle
    raises DeadlockError naming both strands and the lines where each waits."""
    a, b = plait.Lock(), plait.Lock()
    a_taken, b_taken = plait.Event(), plait.Event()

    def one() -> None:
        with a:
            a_taken.set()
            assert b_taken.wait(10)
            with b:
                pass

    def two() -> None:
        with b:
            b_taken.set()
            assert a_taken.wait(10)
            with a:
                pass

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(one, on="green", name="one")
            tg.spawn(two, on="green", name="two")

    was = plait.debug(True)  # (default mode needs the plain Lock's owner: see issue 13)
    try:
        with pytest.raises(BaseExceptionGroup) as info:
            run(main)
    finally:
        plait.debug(was)
    errors = info.value.exceptions
    assert [type(e) for e in errors] == [plait.DeadlockError]
    message = str(errors[0])
    assert "green 'one'" in message and "green 'two'" in message
    assert message.count(__file__) >= 4  # where each waits, where each took its lock
    assert " at ?" not in message


def _hold_until_killed(lock: Any, held: Any) -> None:
    lock.acquire()
    held.set()
    time.sleep(60)


def test_a_green_strand_waiting_on_a_lock_whose_holder_process_is_killed_is_told() -> None:
    """A shared Lock held by a process that is SIGKILLed: the green strand parked on it
    gets BrokenResourceError naming the dead pid (its loop ran on meanwhile), and the lock
    is free again."""
    import os
    import signal

    from plait._ipc.context import get_context

    lock, held = plait.Lock(), plait.Event()
    child: Any = get_context().Process(target=_hold_until_killed, args=(lock, held))
    child.start()
    outcome: list[Any] = []
    ticks: list[int] = []
    done = threading.Event()

    def waiter() -> None:
        try:
            outcome.append(lock.acquire(timeout=20))
        except plait.BrokenResourceError as exc:
            outcome.append(exc)
        finally:
            done.set()
        assert lock.acquire(timeout=5)
        lock.release()

    def killer() -> None:
        plait.testing.wait_parked(on=lock, count=1, timeout=10)
        os.kill(child.pid, signal.SIGKILL)

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(1)
            await asyncio.sleep(0.005)

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(waiter, on="green")
            tg.spawn(killer, on="thread")
            tg.spawn(ticker)

    try:
        assert held.wait(30)
        run(main)
    finally:
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], plait.BrokenResourceError), outcome
    assert str(child.pid) in str(outcome[0])
    assert ticks  # the loop ran while the green strand waited


_PYTHON_PARKS = ("park", "_green_park")  # parking's Python waits (the C one has no frame)


@pytest.mark.parametrize("end", ["woken", "cancelled"])
def test_an_instrument_installed_mid_wait_sees_the_green_strand_unpark(
    end: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait began with no instrument (so it took the C untimed wait where built); one
    # installed while it is parked must still be told how the wait ended, as for a thread.
    from plait._core import green

    q: plait.Queue[int] = plait.Queue()
    recorder = _Recorder()
    python_waits: list[str] = []  # parking's Python park functions the get ran

    def profile(frame: Any, event: str, arg: object) -> None:
        name = frame.f_code.co_name
        module = frame.f_globals.get("__name__")
        if event == "call" and module == "plait._core.parking" and name in _PYTHON_PARKS:
            python_waits.append(name)

    def body() -> None:
        sys.setprofile(profile)
        try:
            q.get()
        finally:
            sys.setprofile(None)

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
            await plait.testing.async_wait_parked(on=q, count=1, timeout=10)
            plait.add_instrument(recorder)
            if end == "woken":
                q.put(1)
            else:
                t.cancel()
        return t

    assert _recorded(main, recorder, installed=False) == [(end, q)]
    assert bool(python_waits) == (green.GREENPARK is None), python_waits  # (C wait, if built)


def test_an_instrument_removed_mid_wait_hears_nothing_more() -> None:
    q: plait.Queue[int] = plait.Queue()
    recorder = _Recorder()

    def body() -> None:
        q.get()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            t = tg.spawn(body, on="green")
            await plait.testing.async_wait_parked(on=q, count=1, timeout=10)
            plait.remove_instrument(recorder)
            q.put(1)
        return t

    assert _recorded(main, recorder, installed=True) == [("parked", q)]
