"""The C accelerator (plait._speedups): its awaitables behave as coroutines, its mutex as a
lock, and nothing it does loses an item.

These tests run against whichever implementation is in use (CI runs the suite a second time
with ``PLAIT_NO_SPEEDUPS=1``). The accelerator cannot be off by accident: where CPython can
build it and ``PLAIT_NO_SPEEDUPS`` is unset, it must be built and in use (a test fails
otherwise), and the tests of the C types themselves skip only when it is turned off on purpose.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import os
import platform
import sys
import sysconfig
import threading
import warnings
from typing import Any

import pytest

from plait import ClosedError, Instrument, add_instrument, remove_instrument
from plait._channels import PriorityQueue, Queue
from plait._channels import _queue_speedups as queue_module
from plait.testing import async_wait_parked

TURNED_OFF = bool(os.environ.get("PLAIT_NO_SPEEDUPS"))
needs_speedups = pytest.mark.skipif(
    TURNED_OFF, reason="PLAIT_NO_SPEEDUPS=1: this run tests the pure-Python queue"
)


def test_the_accelerator_is_in_use_unless_turned_off() -> None:
    importable = importlib.util.find_spec("plait._speedups") is not None
    if TURNED_OFF:
        assert not queue_module.SPEEDUPS
        return
    buildable = platform.python_implementation() == "CPython" and not sysconfig.get_config_var(
        "Py_GIL_DISABLED"
    )
    assert importable or not buildable, (
        "plait._speedups was not built for this CPython: reinstall with a C compiler, or set "
        "PLAIT_NO_SPEEDUPS=1 to test the pure-Python queue on purpose"
    )
    assert importable == queue_module.SPEEDUPS, "plait._speedups is built but not in use"


@needs_speedups
def test_the_fast_paths_run_no_python_code() -> None:
    """put/get on a plain queue finish in C: no Python function runs (were the accelerator
    silently declining, the Python slow paths would show here)."""
    q: Queue[int] = Queue()
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        q.put(1)
        q.put_nowait(2)
        q.get()
        q.get_nowait()
    finally:
        sys.setprofile(None)
    assert calls == []


@needs_speedups
def test_a_subclass_overriding_a_storage_hook_runs_in_python() -> None:
    class Hooked(Queue[int]):
        def _put(self, item: int) -> None:
            super()._put(item + 1)

    q = Hooked()
    q.put(1)
    assert q._fast_put is None and q.get() == 2


@needs_speedups
@pytest.mark.parametrize(
    "break_it",
    [
        "rename a slow path",
        "rename a Waiter slot",
        "rename a Strand field",
        "drop an argument",
        "a module built from another version",
    ],
)
def test_configure_refuses_a_seam_it_cannot_use(
    break_it: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What _queue.py runs at import (unguarded) raises when the seam moved -- and the
    accelerator keeps its previous, working configuration."""
    from plait import _speedups
    from plait._core import strands

    if break_it == "rename a slow path":
        monkeypatch.delattr(Queue, "_offer_slot")
        expected: type[Exception] = ImportError
    elif break_it == "rename a Waiter slot":
        monkeypatch.setattr(queue_module, "Waiter", type("Waiter", (), {"__slots__": ("q",)}))
        expected = AttributeError
    elif break_it == "rename a Strand field":
        monkeypatch.setattr(strands, "Strand", type("Strand", (), {"__slots__": ("state",)}))
        expected = AttributeError
    elif break_it == "a module built from another version":
        monkeypatch.setattr(_speedups, "SEAM", _speedups.SEAM - 1)
        expected = ImportError
    else:
        real = _speedups.configure

        def without_wake(**kw: Any) -> None:
            kw.pop("wake")
            real(**kw)

        monkeypatch.setattr(_speedups, "configure", without_wake)
        expected = TypeError
    with pytest.raises(expected):
        queue_module.configure_speedups(Queue)
    monkeypatch.undo()
    q: Queue[int] = Queue(1)
    q.put(1)
    t = threading.Thread(target=q.put, args=(2,))
    t.start()
    assert q.get() == 1
    t.join(10)
    assert q.get_nowait() == 2


@needs_speedups
def test_configure_takes_keywords_and_names_what_is_missing() -> None:
    from plait import _speedups

    with pytest.raises(TypeError, match="keyword arguments only"):
        _speedups.configure(1)
    with pytest.raises(TypeError, match="needs WaitQueue="):
        _speedups.configure()


async def test_async_forms_are_coroutines_to_asyncio() -> None:
    q: Queue[int] = Queue()
    q.put(1)
    for op in (q.async_get(), q.async_put(2), q.__anext__()):
        assert asyncio.iscoroutine(op) and inspect.isawaitable(op)
        assert op.__qualname__.startswith("Queue.")
        await op
    q.put(3)
    assert await asyncio.create_task(q.async_get()) == 3


async def test_a_task_cancelled_before_it_starts_takes_no_item() -> None:
    """Nothing happens until the awaitable runs, as with a coroutine: no item lost."""
    q: Queue[str] = Queue()
    q.put("kept")
    task = asyncio.create_task(q.async_get())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert q.get_nowait() == "kept"
    put = asyncio.create_task(q.async_put("never"))
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert q.empty()


async def test_a_parked_getter_cancelled_leaves_the_wait_and_loses_nothing() -> None:
    q: Queue[int] = Queue()
    first = asyncio.create_task(q.async_get())
    second = asyncio.create_task(q.async_get())
    await async_wait_parked(on=q, count=2)
    q.put(1)  # kept for `first`...
    first.cancel()  # ...which is cancelled before it runs: the item passes to `second`
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 1
    assert q.statistics().getters_waiting == 0


async def test_a_parked_anext_ends_on_close() -> None:
    q: Queue[int] = Queue()

    async def consume() -> list[int]:
        return [x async for x in q]

    task = asyncio.create_task(consume())
    await async_wait_parked(on=q, count=1)
    q.put(1)
    await async_wait_parked(on=q, count=1)
    q.close()
    assert await task == [1]
    with pytest.raises(ClosedError):
        await q.async_get()


async def test_awaiting_twice_is_an_error_as_for_a_coroutine() -> None:
    q: Queue[int] = Queue()
    q.put(1)
    op = q.async_get()
    assert await op == 1
    with pytest.raises(RuntimeError, match="cannot reuse"):
        await op


def test_an_awaitable_never_awaited_warns_and_does_nothing() -> None:
    q: Queue[int] = Queue()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q.async_put(1)  # (the forgotten await)
        gc.collect()
    assert q.empty()
    assert any("was never awaited" in str(w.message) for w in caught)


async def test_throw_and_close_before_start_and_while_parked() -> None:
    q: Queue[int] = Queue()
    op = q.async_get()
    with pytest.raises(KeyError):
        op.throw(KeyError("x"))
    q.async_get().close()  # closed before start: nothing happened, no warning
    parked = q.async_get()
    assert parked.send(None) is None  # empty: first lets the loop run once (test_queue_pass)
    fut = parked.send(None)  # then parks, and yields its future to the "task" (us)
    assert isinstance(fut, asyncio.Future)
    assert q.statistics().getters_waiting == 1
    parked.close()  # leaves the wait
    assert q.statistics().getters_waiting == 0
    q.put(5)
    assert q.get_nowait() == 5


async def test_instruments_see_fast_path_traffic() -> None:
    """An installed instrument turns the fast paths off: every put and get is reported."""
    seen: list[str] = []

    class Spy(Instrument):
        def sent(self, strand: object, channel: object, item: object) -> None:
            seen.append(f"sent {item}")

        def received(self, strand: object, channel: object, item: object) -> None:
            seen.append(f"received {item}")

    q: Queue[int] = Queue()
    spy = Spy()
    add_instrument(spy)
    try:
        q.put(1)
        await q.async_put(2)
        assert q.get() == 1
        assert await q.async_get() == 2
    finally:
        remove_instrument(spy)
    assert seen == ["sent 1", "sent 2", "received 1", "received 2"]


def test_priority_queue_keeps_nothing_of_an_item_it_cannot_compare() -> None:
    q: PriorityQueue[object] = PriorityQueue()
    for x in (3, 1, 2):
        q.put(x)
    with pytest.raises(TypeError):
        q.put("not an int")
    assert q.qsize() == 3 and q.unfinished_tasks == 3
    assert [q.get_nowait() for _ in range(3)] == [1, 2, 3]


def test_many_threads_and_coroutines_share_one_queue() -> None:
    """Fast paths from several threads and a loop interleave with the slow ones: no item
    lost or duplicated, FIFO per producer."""
    q: Queue[tuple[str, int]] = Queue(8)
    n = 3000
    got: list[list[tuple[str, int]]] = [[], [], []]
    coro_produced = threading.Event()

    def producer(name: str) -> None:
        for i in range(n):
            q.put((name, i))

    def consumer(out: list[tuple[str, int]]) -> None:
        out.extend(q)

    async def coro_side() -> None:
        async def produce() -> None:
            for i in range(n):
                await q.async_put(("coro", i))
            coro_produced.set()

        async def consume() -> None:
            async for item in q:
                got[2].append(item)

        await asyncio.gather(produce(), consume())

    producers = [threading.Thread(target=producer, args=(f"t{k}",)) for k in range(2)]
    consumers = [threading.Thread(target=consumer, args=(got[k],)) for k in range(2)]
    loop_thread = threading.Thread(target=asyncio.run, args=(coro_side(),))
    for t in (*producers, *consumers, loop_thread):
        t.start()
    for t in producers:
        t.join(30)
    assert coro_produced.wait(30)
    q.close()
    for t in (*consumers, loop_thread):
        t.join(30)
    everything = [item for part in got for item in part]
    expected = [(name, i) for name in ("t0", "t1", "coro") for i in range(n)]
    assert sorted(everything) == sorted(expected)
    for part in got:  # each consumer saw each producer's items in order
        for name in ("t0", "t1", "coro"):
            mine = [i for who, i in part if who == name]
            assert mine == sorted(mine)


@needs_speedups
def test_mutex_has_the_lock_api() -> None:
    from plait import _speedups

    m = _speedups.Mutex()
    assert m.acquire() and m.locked()
    assert not m.acquire(False)
    assert not m.acquire(timeout=0.01)
    with pytest.raises(ValueError, match="non-blocking"):
        m.acquire(False, 1)
    with pytest.raises(ValueError, match="non-negative"):
        m.acquire(timeout=-5)
    m.release()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        m.release()
    with m:
        assert m.locked()
    assert not m.locked()
    released = threading.Event()
    m.acquire()
    t = threading.Thread(target=lambda: (m.acquire(), released.set(), m.release()))
    t.start()
    assert not released.wait(0.05)
    m.release()  # (another thread may release it, as with threading.Lock)
    t.join(5)
    assert released.is_set()
    # A timed acquire in another thread takes it once released (blocked first or not).
    m.acquire()
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(m.acquire(timeout=30)))
    t.start()
    m.release()
    t.join(30)
    assert got == [True] and m.locked()
    m.release()


def test_a_shared_queue_puts_and_gets_through_the_c_port() -> None:
    """A promoted queue's put/get are the C port (plait._speedups.RingPort) whenever the
    accelerator is in use -- never silently the Python methods -- and both forms keep the
    queue's behaviour: every kind of item round-trips in order, Full and Empty as before."""
    from queue import Empty, Full

    from plait._ipc.promotion import promote

    q: Queue[Any] = Queue(4)
    promote(q)
    port = getattr(q.put, "__self__", None)
    if TURNED_OFF:
        assert type(port).__name__ == "SharedQueue"
    else:
        assert type(port).__name__ == "RingPort", "a shared queue is not using the C port"
        assert q.get.__self__ is port
    items: list[Any] = [1, -(2**63), 2**70, "text", b"x" * 5000, [1, (2, 3.5)]]
    for chunk in (items[:4], items[4:]):
        for item in chunk:
            q.put(item)
        assert [q.get() for _ in chunk] == chunk
    for i in range(4):
        q.put(i, block=False)
    with pytest.raises(Full):
        q.put(4, block=False)
    with pytest.raises(Full):
        q.put(4, timeout=0.01)
    assert [q.get(timeout=1) for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(Empty):
        q.get(timeout=0.01)
    with pytest.raises(TypeError):
        q.put()  # type: ignore[call-arg]
    assert q.statistics().unfinished_tasks == 10


async def test_a_getter_cancelled_before_a_put_hands_it_an_item_loses_nothing() -> None:
    """The put hands the item to a waiter whose future is already cancelled: the wake finds
    the future done (reported as nothing, not as an error) and the item comes back."""
    q: Queue[int] = Queue()
    seen: list[Any] = []
    getter = asyncio.create_task(q.async_get())
    await async_wait_parked(on=q, count=1)
    getter.cancel()  # its future is cancelled now; it leaves the wait when it next runs
    old_hook = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        q.put(1)
        with pytest.raises(asyncio.CancelledError):
            await getter
    finally:
        sys.unraisablehook = old_hook
    assert seen == []
    assert q.get_nowait() == 1
    assert q.statistics().getters_waiting == 0


def test_a_loop_with_its_own_create_future_makes_the_wait_future() -> None:
    """A parked get asks the loop for its future unless the loop keeps asyncio's own
    ``create_future`` (which the fast path makes without its Python frame)."""
    made: list[asyncio.Future[Any]] = []

    class Loop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            fut = super().create_future()
            made.append(fut)
            return fut

    async def main() -> int:
        q: Queue[int] = Queue()
        getter = asyncio.create_task(q.async_get())
        await async_wait_parked(on=q, count=1)
        waiter = q._getters._dq[0]
        assert any(f is waiter.fut for f in made)  # the wait's own future, from the loop
        q.put(7)
        return await getter

    with asyncio.Runner(loop_factory=Loop) as runner:
        assert runner.run(main()) == 7
    assert made and all(f.done() for f in made)


_GATE_SCRIPT = r"""
import pickle, time
import plait
from plait._ipc.transport import Ring

q = plait.Queue(10)
pickle.dumps(q)  # shared: its puts go through the C RingPort
hdr = q._shared.hdr
gate = Ring.PUT_GATE
hdr[gate] = time.monotonic_ns()  # held by a putter elsewhere that is slow to let go
q.put(1)  # goes on without it, a moment later
assert hdr[gate] != 0, "a gate held by another putter was taken"
hdr[gate] = time.monotonic_ns() - 20_000_000  # its holder was killed holding it
q.put(2)  # taken over, and given back
assert hdr[gate] == 0, hdr[gate]
q.put(3)
assert hdr[gate] == 0
assert [q.get(timeout=5) for _ in range(3)] == [1, 2, 3]
print("ok")
"""


@pytest.mark.skipif(TURNED_OFF, reason="PLAIT_NO_SPEEDUPS=1: there is no C putter here")
def test_the_putters_gate_is_only_a_hint() -> None:
    """With PLAIT_PUT_GATE=1 the C putters take turns through a gate word; a gate held by
    someone else never stops a put for long, a stale one (its holder killed) is taken over,
    and a put leaves it free."""
    import subprocess

    env = {**os.environ, "PLAIT_PUT_GATE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _GATE_SCRIPT],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
