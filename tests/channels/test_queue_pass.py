"""A coroutine's plain get on an empty queue lets its loop run once before it parks.

In a ping-pong the item is usually there by then, so the get takes it with no future and no
wake. These tests pin what that pass may and may not change: a getter already parked is
never overtaken, a cancel at the pass takes nothing, timed and non-blocking gets never pass,
and a strand counts as parked only once it waits in the queue. Each runs in a plait
TaskGroup's strands (the C accelerator's path) and, in CI's second run with
``PLAIT_NO_SPEEDUPS=1``, in pure Python.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import pytest

import plait
from plait._channels import Queue
from plait._core import current_strand
from plait.testing import async_wait_parked, parked_on


def _waiting(q: Queue[Any]) -> int:
    return q.statistics().getters_waiting


async def test_an_item_put_during_the_pass_is_taken_with_no_wait() -> None:
    q: Queue[int] = Queue()
    async with plait.TaskGroup() as tg:
        task = tg.spawn(q.async_get)
        await asyncio.sleep(0)  # the getter found the queue empty: it is in its pass
        assert _waiting(q) == 0
        assert parked_on(q) == []
        q.put_nowait(7)  # nobody waits: queued, no wake
    assert task.result() == 7


async def test_a_getter_parks_after_its_pass_and_wait_parked_sees_it() -> None:
    q: Queue[int] = Queue()
    strands: list[Any] = []

    async def getter() -> int:
        strands.append(current_strand())
        return await q.async_get()

    async with plait.TaskGroup() as tg:
        task = tg.spawn(getter)
        await asyncio.sleep(0)
        (strand,) = strands
        assert strand.state == "running"  # in its pass: not parked yet
        await async_wait_parked(on=q, count=1)
        assert strand.state == "parked"
        assert strand.parked_on is q
        assert _waiting(q) == 1
        q.put(3)
    assert task.result() == 3


@pytest.mark.parametrize("parked", [False, True], ids=["in-their-pass", "parked"])
async def test_getters_get_items_in_arrival_order(parked: bool) -> None:
    q: Queue[str] = Queue()
    async with plait.TaskGroup() as tg:
        first = tg.spawn(q.async_get)
        second = tg.spawn(q.async_get)
        if parked:
            await async_wait_parked(on=q, count=2)
        else:
            await asyncio.sleep(0)
            assert _waiting(q) == 0
        q.put("a")
        q.put("b")
    assert (first.result(), second.result()) == ("a", "b")


async def test_a_parked_getter_is_not_overtaken_by_a_newcomer() -> None:
    """A newcomer finds a getter parked: it parks behind it at once, with no pass."""
    q: Queue[str] = Queue()
    async with plait.TaskGroup() as tg:
        first = tg.spawn(q.async_get)
        await async_wait_parked(on=q, count=1)
        second = tg.spawn(q.async_get)
        await asyncio.sleep(0)  # one loop pass: the newcomer is parked already
        assert _waiting(q) == 2
        q.put("a")
        q.put("b")
        third = tg.spawn(q.async_get)  # arrives with both items kept for the parked two
        await asyncio.sleep(0)
        q.put("c")
    assert (first.result(), second.result(), third.result()) == ("a", "b", "c")


@pytest.mark.parametrize("with_item", [False, True])
async def test_a_getter_cancelled_in_its_pass_takes_nothing(with_item: bool) -> None:
    q: Queue[int] = Queue()
    task = asyncio.ensure_future(plait_get(q))
    await asyncio.sleep(0)  # in its pass
    assert _waiting(q) == 0
    if with_item:
        q.put(1)  # arrives during the pass: stays for the next getter
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _waiting(q) == 0
    q.put(2)
    assert [q.get_nowait() for _ in range(q.qsize())] == ([1, 2] if with_item else [2])


async def plait_get(q: Queue[int]) -> int:
    return await q.async_get()


async def test_a_plain_get_under_an_asyncio_timeout_takes_nothing() -> None:
    q: Queue[int] = Queue()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await q.async_get()
    assert _waiting(q) == 0
    q.put(1)
    assert await q.async_get() == 1


async def test_timed_and_non_blocking_gets_do_not_pass() -> None:
    q: Queue[int] = Queue()
    op = q.async_get(block=False)
    with pytest.raises(queue.Empty):
        op.send(None)  # raises at once: no pass yielded first
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        await q.async_get(timeout=0.001)


async def test_the_pass_and_the_park_as_a_task_drives_them() -> None:
    """Driven by hand: the first send is the pass (a bare yield), the next one parks."""
    q: Queue[int] = Queue()
    op = q.async_get()
    assert op.send(None) is None  # the pass: nothing queued, nothing parked
    assert _waiting(q) == 0
    fut = op.send(None)  # still empty: parks, and yields its future
    assert isinstance(fut, asyncio.Future)
    assert _waiting(q) == 1
    op.close()
    assert _waiting(q) == 0
    passing = q.async_get()
    assert passing.send(None) is None
    with pytest.raises(KeyError):
        passing.throw(KeyError("x"))  # at the pass: nothing to leave, nothing taken
    q.put(5)
    assert q.get_nowait() == 5


async def test_a_thread_put_during_the_pass_is_taken() -> None:
    q: Queue[int] = Queue()
    async with plait.TaskGroup() as tg:
        task = tg.spawn(q.async_get)
        await asyncio.sleep(0)  # in its pass
        t = threading.Thread(target=q.put, args=(9,))
        t.start()
        t.join()
    assert task.result() == 9


async def test_a_thread_wakes_a_getter_parked_after_its_pass() -> None:
    q: Queue[int] = Queue()
    async with plait.TaskGroup() as tg:
        task = tg.spawn(q.async_get)
        await async_wait_parked(on=q, count=1)
        t = threading.Thread(target=q.put, args=(9,))
        t.start()
    t.join()
    assert task.result() == 9


@pytest.mark.parametrize("maxsize", [0, 1])
async def test_ping_pong_and_async_for_keep_every_item_in_order(maxsize: int) -> None:
    a: Queue[int] = Queue(maxsize)
    b: Queue[int] = Queue(maxsize)
    n = 200

    async def left() -> list[int]:
        got = []
        for i in range(n):
            await a.async_put(i)
            got.append(await b.async_get())
        a.close()
        return got

    async def right() -> None:
        async for item in a:
            await b.async_put(item * 2)

    async with plait.TaskGroup() as tg:
        got = tg.spawn(left)
        tg.spawn(right)
    assert got.result() == [2 * i for i in range(n)]
