"""Queue.put_many/get_many and their async forms: one lock per batch, nothing lost or put
twice, and an early end (timeout, close, cancel) says exactly which items went in."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from plait._channels import Empty, Full, PriorityQueue, Queue
from plait._errors import SerializationError, ShutDown
from plait._ipc.context import get_context
from plait._ipc.promotion import promote
from plait._ipc.transport import Ring
from plait.testing import wait_parked

KINDS = ["local", "shared"]


def _queue(kind: str, maxsize: int = 0) -> Queue[Any]:
    q: Queue[Any] = Queue(maxsize)
    if kind == "shared":
        promote(q)
    return q


def _drain(q: Queue[Any]) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out.append(q.get_nowait())
        except Empty:
            return out


def _thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


@pytest.mark.parametrize("kind", KINDS)
def test_put_many_then_get_many_in_order(kind: str) -> None:
    q = _queue(kind)
    items = [1, -5, 2**70, "s", b"b" * 300, (1, 2), None, 3.5, True]
    q.put_many(items)
    assert q.qsize() == len(items)
    got = q.get_many(4) + q.get_many(100)
    assert got == items
    assert [type(x) for x in got] == [type(x) for x in items]  # (True stays a bool)
    assert q.unfinished_tasks == len(items)


@pytest.mark.parametrize("kind", KINDS)
def test_get_many_takes_only_what_is_queued(kind: str) -> None:
    q = _queue(kind)
    q.put_many(range(3))
    assert q.get_many(10) == [0, 1, 2]
    with pytest.raises(Empty):
        q.get_many(10, block=False)
    with pytest.raises(Empty):
        q.get_many(10, timeout=0.01)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_get_many_rejects_a_bad_max_items(bad: Any) -> None:
    q: Queue[int] = Queue()
    q.put(1)
    with pytest.raises(ValueError, match="max_items"):
        q.get_many(bad)
    assert q.qsize() == 1  # nothing lost


@pytest.mark.parametrize("kind", KINDS)
def test_put_many_beyond_maxsize_times_out_saying_what_went_in(kind: str) -> None:
    q = _queue(kind, maxsize=5)
    q.put(-1)
    with pytest.raises(Full) as info:
        q.put_many(range(10), timeout=0.05)
    assert info.value.items_put == 4  # type: ignore[attr-defined]
    assert _drain(q) == [-1, 0, 1, 2, 3]
    with pytest.raises(Full) as info:
        q.put_many(["a"] * 7, block=False)
    assert info.value.items_put == 5  # type: ignore[attr-defined]
    assert q.qsize() == 5


@pytest.mark.parametrize("kind", KINDS)
def test_put_many_beyond_maxsize_waits_and_loses_nothing(kind: str) -> None:
    q = _queue(kind, maxsize=4)
    t, box = _thread(lambda: q.put_many(range(50), timeout=20))
    got: list[int] = []
    try:
        while len(got) < 50:
            got += q.get_many(3, timeout=10)
    finally:
        t.join(10)
    assert not t.is_alive() and "error" not in box
    assert got == list(range(50))


@pytest.mark.parametrize("kind", KINDS)
def test_put_many_on_a_closed_queue_puts_nothing(kind: str) -> None:
    q = _queue(kind)
    q.close()
    with pytest.raises(ShutDown) as info:
        q.put_many([1, 2])
    assert info.value.items_put == 0  # type: ignore[attr-defined]


def test_close_while_put_many_waits_reports_the_part_put() -> None:
    q: Queue[int] = Queue(3)
    t, box = _thread(lambda: q.put_many(range(8), timeout=20))
    try:
        wait_parked(on=q, count=1)
        q.close()
    finally:
        t.join(10)
    assert isinstance(box.get("error"), ShutDown)
    assert box["error"].items_put == 3
    assert q.get_many(10) == [0, 1, 2]


def test_get_many_frees_room_for_every_parked_putter() -> None:
    q: Queue[int] = Queue(2)
    q.put_many([0, 1])
    threads = [_thread(lambda i=i: q.put(10 + i, timeout=20)) for i in range(2)]
    try:
        wait_parked(on=q, count=2)
        assert q.get_many(5) == [0, 1]
    finally:
        for t, _box in threads:
            t.join(10)
    assert all("error" not in box for _t, box in threads)
    assert sorted(q.get_many(5)) == [10, 11]


def test_put_many_wakes_every_parked_getter() -> None:
    q: Queue[int] = Queue()
    threads = [_thread(lambda: q.get(timeout=20)) for _ in range(3)]
    try:
        wait_parked(on=q, count=3)
        q.put_many([1, 2, 3])
    finally:
        for t, _box in threads:
            t.join(10)
    assert sorted(box["value"] for _t, box in threads) == [1, 2, 3]


def test_a_failing_put_hook_reports_the_items_before_it() -> None:
    class Picky(Queue[int]):
        def _put(self, item: int) -> None:
            if item < 0:
                raise ValueError("negative")
            super()._put(item)

    q = Picky()
    with pytest.raises(ValueError, match="negative") as info:
        q.put_many([1, 2, -3, 4])
    assert info.value.items_put == 2  # type: ignore[attr-defined]
    assert q.get_many(10) == [1, 2]
    assert q.unfinished_tasks == 2


def test_an_unpicklable_item_puts_nothing_in_a_shared_queue() -> None:
    q = _queue("shared")
    lock = threading.Lock()
    with pytest.raises((SerializationError, TypeError)) as info:
        q.put_many([1, "two", lock])
    assert info.value.items_put == 0  # type: ignore[attr-defined]
    assert q.qsize() == 0


def test_a_shared_priority_queue_orders_a_batch() -> None:
    q: PriorityQueue[int] = PriorityQueue()
    promote(q)
    q.put_many([5, 3, 9, 1])
    assert q.get_many(10) == [1, 3, 5, 9]


# -- coroutines --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_async_forms(kind: str) -> None:
    q = _queue(kind, maxsize=3)
    task = asyncio.ensure_future(q.async_put_many(range(10), timeout=20))
    got: list[int] = []
    while len(got) < 10:
        got += await q.async_get_many(4, timeout=10)
    await asyncio.wait_for(task, 10)
    assert got == list(range(10))
    with pytest.raises(Empty):
        await q.async_get_many(2, timeout=0.01)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancelled_async_put_many_says_what_went_in(kind: str) -> None:
    q = _queue(kind, maxsize=4)
    task = asyncio.ensure_future(q.async_put_many(range(10)))
    deadline = time.monotonic() + 10
    while q.statistics().putters_waiting < 1:  # parked, waiting for room
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    assert info.value.items_put == 4  # type: ignore[attr-defined]
    assert await q.async_get_many(10) == [0, 1, 2, 3]
    assert q.qsize() == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancelled_async_get_many_takes_nothing(kind: str) -> None:
    q = _queue(kind)
    task = asyncio.ensure_future(q.async_get_many(5))
    deadline = time.monotonic() + 10
    while q.statistics().getters_waiting < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    q.put_many([1, 2])
    assert await q.async_get_many(5) == [1, 2]


# -- across processes ----------------------------------------------------------------------


def produce_batches(q: Queue[Any], tag: int, n: int) -> None:
    for b in range(n):
        q.put_many([(tag, b, i) if i % 3 else tag * 1000 + b for i in range(16)])
    q.put(None)


def test_fan_in_from_processes_in_batches() -> None:
    q = _queue("local", maxsize=40)
    ctx: Any = get_context()
    procs = [ctx.Process(target=produce_batches, args=(q, tag, 20)) for tag in range(3)]
    for p in procs:
        p.start()
    got: list[Any] = []
    done = 0
    try:
        while done < 3:
            items = q.get_many(25, timeout=20)
            done += items.count(None)
            got += [x for x in items if x is not None]
    finally:
        for p in procs:
            p.join(20)
            if p.is_alive():
                p.kill()
                p.join()
    assert len(got) == 3 * 20 * 16
    for tag in range(3):  # each producer's items arrive in its order, once each
        mine = [x for x in got if (x[0] if isinstance(x, tuple) else x // 1000) == tag]
        expected = [(tag, b, i) if i % 3 else tag * 1000 + b for b in range(20) for i in range(16)]
        assert mine == expected


def test_a_shared_batch_bigger_than_the_ring_spills_and_loses_nothing() -> None:
    q = _queue("shared", maxsize=1000)  # room by count, not by the ring's bytes
    items = [bytes([i]) * 200_000 for i in range(60)]  # about 12 MB: more than the ring
    t, box = _thread(lambda: q.put_many(items, timeout=20))
    try:
        t.join(30)
    finally:
        got = []
        while len(got) < len(items) and (t.is_alive() or q.qsize()):
            got += q.get_many(16, timeout=10)
        t.join(10)
    assert "error" not in box
    assert got == items


def test_shared_batches_of_mixed_items_survive_the_ring_wrapping() -> None:
    q = _queue("shared")
    expected: list[Any] = []
    got: list[Any] = []
    tail = 0
    for r in range(120):  # about 12 MB through an 8 MiB ring, never empty: it wraps
        batch: list[Any] = list(range(r, r + 100))
        batch.insert(r % 100, "x" * (100_000 + r * 8))  # inline frames of odd sizes
        batch.append(2**64 + r)  # an int beyond 64 bits travels pickled
        q.put_many(batch)
        expected += batch
        tail = max(tail, int(q._shared.hdr[Ring.TAIL]))
        if r:
            got += q.get_many(len(batch) - r % 2)  # a backlog that grows: never empty
    assert tail > q._shared.ring.cap  # (the ring's offsets went past its end: it wrapped)
    while len(got) < len(expected):
        got += q.get_many(10_000)
    assert got == expected
