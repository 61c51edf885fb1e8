"""select / async_select over queue gets and puts, futures, timeouts and defaults."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from plait._channels import Queue, Selected, async_select, select
from plait._errors import ClosedError
from plait.testing import wait_parked
from plait.testing._kit import async_wait_parked, parked_on


def test_ready_case_fires_in_order_given() -> None:
    a: Queue[int] = Queue()
    b: Queue[int] = Queue()
    b.put(2)
    a.put(1)
    r = select(a.get_op(), b.get_op())
    assert (r.index, r.value) == (0, 1)
    assert b.get_nowait() == 2  # the other case took nothing


def test_default_never_waits() -> None:
    a: Queue[int] = Queue()
    r = select(a.get_op(), default="idle")
    assert r == Selected(-1, "idle", None)


def test_timeout_raises_and_takes_nothing() -> None:
    a: Queue[int] = Queue()
    full: Queue[int] = Queue(1)
    full.put(0)
    with pytest.raises(TimeoutError):
        select(a.get_op(), full.put_op(9), timeout=0.02)
    assert full.get_nowait() == 0 and full.empty()
    assert a.statistics().getters_waiting == 0


def test_parked_select_gets_exactly_one() -> None:
    a: Queue[int] = Queue()
    b: Queue[int] = Queue()
    out: list[Selected] = []
    t = threading.Thread(target=lambda: out.append(select(a.get_op(), b.get_op())))
    t.start()
    wait_parked(count=1)
    b.put(7)
    a.put(8)
    t.join()
    assert (out[0].index, out[0].value) == (1, 7)
    assert a.get_nowait() == 8  # not lost to the select that already fired
    assert a.statistics().getters_waiting == 0


def test_put_case_waits_for_room() -> None:
    full: Queue[int] = Queue(1)
    full.put(0)
    other: Queue[int] = Queue()
    out: list[Selected] = []
    t = threading.Thread(target=lambda: out.append(select(full.put_op(1), other.get_op())))
    t.start()
    wait_parked(count=1)
    assert full.get() == 0
    t.join()
    assert out[0].index == 0
    assert full.get_nowait() == 1


def test_closed_queue_raises_from_select() -> None:
    a: Queue[int] = Queue()
    a.close()
    with pytest.raises(ClosedError):
        select(a.get_op())
    b: Queue[int] = Queue()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            select(b.get_op())
        except ClosedError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    wait_parked(count=1)
    b.close()
    t.join()
    assert len(errors) == 1


def test_future_case() -> None:
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    a: Queue[int] = Queue()
    out: list[Selected] = []
    t = threading.Thread(target=lambda: out.append(select(a.get_op(), fut)))
    t.start()
    wait_parked(count=1)
    fut.set_result(5)
    t.join()
    assert out[0].index == 1 and out[0].value.result() == 5


def test_bad_case_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="cannot wait on"):
        select(42)
    with pytest.raises(ValueError, match="at least one"):
        select()


async def test_async_select_and_cancel_gives_item_back() -> None:
    a: Queue[int] = Queue()
    b: Queue[int] = Queue()
    task = asyncio.ensure_future(async_select(a.get_op(), b.get_op()))
    await async_wait_parked(count=1)
    a.put(1)  # fires the select...
    task.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.get_nowait() == 1
    r = await async_select(a.get_op(), b.get_op(), default=None)
    assert r.index == -1
    with pytest.raises(TimeoutError):
        await async_select(a.get_op(), timeout=0.01)
    loop_fut = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(async_select(a.get_op(), loop_fut))
    await async_wait_parked(count=1)
    loop_fut.set_result("done")
    r = await waiting
    assert r.index == 1 and r.value is loop_fut
    assert not parked_on(a)


def test_many_selects_no_item_lost_or_duplicated() -> None:
    qs: list[Queue[int]] = [Queue(2) for _ in range(3)]
    n = 600
    got: list[int] = []
    lock = threading.Lock()

    def consumer() -> None:
        live = list(qs)
        while live:
            try:
                r = select(*(q.get_op() for q in live))
            except ClosedError:
                live = [q for q in live if not (q.closed and q.empty())]
                continue
            with lock:
                got.append(r.value)

    def producer(k: int) -> None:
        for i in range(k, n, 3):
            select(qs[i % 3].put_op(i), qs[(i + 1) % 3].put_op(i))

    consumers = [threading.Thread(target=consumer) for _ in range(3)]
    producers = [threading.Thread(target=producer, args=(k,)) for k in range(3)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    for q in qs:
        q.close()
    for t in consumers:
        t.join(30)
    assert sorted(got) == list(range(n))


class ToyEvent:
    """What a primitive adds to join a select: an ArmSet and __select_case__."""

    def __init__(self) -> None:
        from plait._channels._select import ArmSet

        self._flag = False
        self._arms = ArmSet()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        self._arms.fire_all(True)

    def __select_case__(self) -> Any:
        return self._arms.case(lambda: (self.is_set(), True))


def test_selectable_protocol_for_events() -> None:
    ev = ToyEvent()
    q: Queue[int] = Queue()
    assert select(q.get_op(), ev, default=None).index == -1
    out: list[Selected] = []
    t = threading.Thread(target=lambda: out.append(select(q.get_op(), ev)))
    t.start()
    wait_parked(count=1)
    ev.set()
    t.join()
    assert (out[0].index, out[0].value) == (1, True)
    q.put(1)
    assert select(ev, q.get_op()).index == 0  # still set: ready at once
    assert q.get_nowait() == 1


def test_plait_task_is_selectable() -> None:
    from plait._tasks import TaskGroup

    q: Queue[int] = Queue()
    go = threading.Event()
    with TaskGroup() as tg:
        task = tg.spawn(go.wait)
        assert select(q.get_op(), task, default=None).index == -1
        go.set()
        r = select(q.get_op(), task, timeout=10)
        assert r.index == 1 and r.value is task


def test_instruments_see_a_select_park_and_unpark() -> None:
    from plait._core import Instrument, add_instrument, remove_instrument

    seen: list[tuple[str, str]] = []

    class Recorder(Instrument):
        def strand_parked(self, strand: Any, on: object) -> None:
            if type(on).__name__ == "_Selector":
                seen.append(("parked", ""))

        def strand_unparked(self, strand: Any, on: object, outcome: str) -> None:
            if type(on).__name__ == "_Selector":
                seen.append(("unparked", outcome))

    recorder = Recorder()
    add_instrument(recorder)
    try:
        a: Queue[int] = Queue()
        with pytest.raises(TimeoutError):
            select(a.get_op(), timeout=0.01)
        t = threading.Thread(target=lambda: select(a.get_op(), timeout=10))
        t.start()
        wait_parked(count=1)
        a.put(1)
        t.join()
    finally:
        remove_instrument(recorder)
    assert seen == [("parked", ""), ("unparked", "timeout"), ("parked", ""), ("unparked", "woken")]
