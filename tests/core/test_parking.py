"""The parking protocol: FIFO wake-ups, timeouts, and races that must lose nothing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from plait._core import (
    CANCELLED,
    TIMED_OUT,
    WOKEN,
    WaitQueue,
    async_park,
    current_strand,
    new_mutex,
    park,
)
from plait.testing import wait_parked


class Box:
    """A tiny primitive over parking: ``get`` waits for ``put``'s value."""

    def __init__(self) -> None:
        self.mutex = new_mutex()
        self.q = WaitQueue(self.mutex)
        self.items: list[object] = []

    def put(self, value: object) -> None:
        with self.mutex:
            w = self.q.pop(value)
            if w is None:
                self.items.append(value)
        if w is not None:
            w.wake()

    def get(self, timeout: float | None = None) -> object:
        with self.mutex:
            if self.items:
                return self.items.pop(0)
            w = self.q.enqueue_current(self)
        if not park(w, timeout):
            raise TimeoutError
        return w.value

    async def async_get(self, timeout: float | None = None) -> object:
        with self.mutex:
            if self.items:
                return self.items.pop(0)
            w = self.q.async_enqueue_current(self)
        if not await async_park(w, timeout, undo=self._put_back):
            raise TimeoutError
        return w.value

    def _put_back(self, value: object) -> None:
        with self.mutex:
            self.items.insert(0, value)


def test_thread_parks_until_woken_with_value() -> None:
    box = Box()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(box.get()))
    t.start()
    wait_parked(box, count=1)
    box.put("hello")
    t.join(5)
    assert got == ["hello"]


def test_timeout_returns_false_and_leaves_queue_empty() -> None:
    box = Box()
    with pytest.raises(TimeoutError):
        box.get(timeout=0.01)
    assert len(box.q) == 0
    box.put(1)
    assert box.items == [1]


def test_fifo_order_of_wakeups() -> None:
    box = Box()
    order: list[tuple[int, object]] = []
    threads = []
    for i in range(5):
        t = threading.Thread(target=lambda i=i: order.append((i, box.get())))
        t.start()
        wait_parked(box, count=i + 1)
        threads.append(t)
    for v in range(5):
        box.put(v)
    for t in threads:
        t.join(5)
    assert sorted(order) == [(i, i) for i in range(5)]


def test_wake_racing_timeout_never_loses_the_value() -> None:
    # Many rounds of a put landing right around the getter's timeout: every value must end
    # up either returned to the getter or left in the box -- never lost.
    for _ in range(300):
        box = Box()
        got: list[object] = []

        def getter(box: Box = box, got: list[object] = got) -> None:
            try:
                got.append(box.get(timeout=0.0005))
            except TimeoutError:
                pass

        t = threading.Thread(target=getter)
        t.start()
        box.put("v")
        t.join(5)
        assert got + box.items == ["v"]


def test_async_waiter_woken_from_another_thread() -> None:
    box = Box()

    async def main() -> object:
        threading.Thread(target=lambda: (wait_parked(box, count=1), box.put(7))).start()
        return await box.async_get()

    assert asyncio.run(main()) == 7


def test_async_cancel_after_handover_gives_the_value_back() -> None:
    box = Box()

    async def main() -> None:
        task = asyncio.create_task(box.async_get())
        await asyncio.sleep(0)
        while len(box.q) == 0:
            await asyncio.sleep(0)
        box.put("x")  # handed over: the future is resolved, the task not yet resumed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert box.items == ["x"]


def test_async_timeout() -> None:
    box = Box()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await box.async_get(timeout=0.01)

    asyncio.run(main())
    assert len(box.q) == 0


def test_waiter_states_and_strand_state_while_parked() -> None:
    box = Box()
    seen: list[str] = []

    def getter() -> None:
        box.get()
        seen.append(current_strand().state)

    t = threading.Thread(target=getter)
    t.start()
    wait_parked(box, count=1)
    (w,) = list(box.q)
    assert w.strand.state == "parked"
    assert w.strand.parked_on is box
    box.put(None)
    t.join(5)
    assert w.state == WOKEN
    assert seen == ["running"]
    assert {WOKEN, TIMED_OUT, CANCELLED} == {1, 2, 3}


def test_async_enqueue_outside_loop_is_a_clear_error() -> None:
    box = Box()
    with box.mutex, pytest.raises(RuntimeError, match="running event loop"):
        box.q.async_enqueue_current(box)


def test_handover_to_a_coroutine_whose_loop_closed_is_given_back() -> None:
    box = Box()
    loop = asyncio.new_event_loop()
    parked = threading.Event()

    async def getter() -> None:
        with box.mutex:
            w = box.q.async_enqueue_current(box)
        parked.set()
        await async_park(w, None, undo=box._put_back)

    task = loop.create_task(getter())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert parked.is_set()
    loop.close()  # the loop dies with the coroutine still parked (a bug in user code)

    def put_from_thread() -> None:
        box.put("kept")

    t = threading.Thread(target=put_from_thread)
    t.start()
    t.join(5)
    assert box.items == ["kept"]
    task._log_destroy_pending = False  # type: ignore[attr-defined] # its loop is gone on purpose
    task.get_coro().close()  # what garbage collection would do: no second give-back
    assert box.items == ["kept"]


def test_handover_on_the_closed_loops_own_thread_is_given_back() -> None:
    box = Box()
    loop = asyncio.new_event_loop()

    async def getter() -> None:
        with box.mutex:
            w = box.q.async_enqueue_current(box)
        await async_park(w, None, undo=box._put_back)

    task = loop.create_task(getter())
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    box.put("kept")  # same thread as the dead loop: set_result would fail on the loop
    assert box.items == ["kept"]
    task._log_destroy_pending = False  # type: ignore[attr-defined] # its loop is gone on purpose
    task.get_coro().close()
    assert box.items == ["kept"]
