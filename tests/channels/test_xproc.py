"""Queues across processes: promote-on-pickle, semantics kept, nothing lost, no shm leaked."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import random
import signal
import threading
from typing import Any

import numpy as np
import pytest

from plait._channels import Empty, Full, LifoQueue, PriorityQueue, Queue
from plait._errors import ClosedError, SerializationError
from plait._ipc import shm
from plait._ipc.context import get_context
from plait.testing import wait_parked


def _ctx() -> Any:
    return get_context()  # (typed Any: a BaseContext has no Process in the stubs)


def _start(target: Any, *args: Any) -> Any:
    p = _ctx().Process(target=target, args=args)
    p.start()
    return p


def _shm_names(prefix: str) -> list[str]:
    return [n for n in os.listdir(shm.SHM_DIR) if prefix in n]


# -- children ------------------------------------------------------------------------------


def put_range(q: Queue[Any], tag: str, n: int) -> None:
    for i in range(n):
        q.put((tag, i))


def echo_until_closed(inbox: Queue[Any], outbox: Queue[Any]) -> None:
    for item in inbox:
        outbox.put(item)
        inbox.task_done()


def get_queue_then_put(control: Queue[Any]) -> None:
    q = control.get()
    q.put(("late", os.getpid()))


def put_big_and_exit(q: Queue[Any]) -> None:
    q.put(b"x" * (10 * 1024 * 1024))
    q.put(bytearray(3 * 1024 * 1024))
    q.put(np.arange(1_000_000, dtype=np.int64))
    for i in range(20_000):  # and plenty of small ones
        q.put(i)


def put_forever(q: Queue[Any], ready: Queue[Any]) -> None:
    block = np.ones(2 * 1024 * 1024, dtype=np.uint8)
    ready.put("go")
    while True:
        q.put(block)


# -- tests ---------------------------------------------------------------------------------


def test_passed_at_spawn_keeps_fifo_per_producer_and_items_queued_before() -> None:
    q: Queue[Any] = Queue()
    q.put(("parent", -1))
    procs = [_start(put_range, q, f"c{k}", 300) for k in range(2)]
    q.put(("parent", 0))
    got = [q.get(timeout=20) for _ in range(602)]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert got[0] == ("parent", -1)
    for tag in ("c0", "c1"):
        assert [i for t, i in got if t == tag] == list(range(300))
    assert q.statistics().shared and q.empty()


def test_close_task_done_and_join_across_processes() -> None:
    inbox: Queue[Any] = Queue(4)
    outbox: Queue[Any] = Queue()
    p = _start(echo_until_closed, inbox, outbox)
    for i in range(50):
        inbox.put(i)
    inbox.join()  # the child marks each one done
    assert [outbox.get(timeout=10) for _ in range(50)] == list(range(50))
    inbox.close()
    p.join(10)
    assert p.exitcode == 0  # its `for item in inbox` ended on close
    with pytest.raises(ClosedError):
        inbox.put(1)
    with pytest.raises(ClosedError):
        inbox.get()


def test_passed_later_to_a_running_worker() -> None:
    control: Queue[Any] = Queue()
    p = _start(get_queue_then_put, control)
    fresh: Queue[Any] = Queue()
    control.put(fresh)  # promoted here, after the worker started
    tag, pid = fresh.get(timeout=20)
    assert tag == "late" and pid == p.pid
    p.join(10)


def test_local_waiters_follow_the_promotion() -> None:
    q: Queue[Any] = Queue()
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=20)))
    t.start()
    wait_parked(on=q, count=1)
    p = _start(put_range, q, "child", 1)  # pickling q promotes it under the parked getter
    t.join()
    p.join(10)
    assert got == [("child", 0)]


def test_unpicklable_item_raises_at_the_call_and_loses_nothing() -> None:
    q: Queue[Any] = Queue()
    q.put("first")
    p = _start(put_range, q, "c", 0)
    p.join(10)
    with pytest.raises(SerializationError, match="lock"):
        q.put({"conn": threading.Lock()})
    assert q.get(timeout=5) == "first"
    with pytest.raises(Empty):
        q.get(timeout=0.01)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)


def test_child_that_puts_10mb_and_exits_loses_nothing() -> None:
    q: Queue[Any] = Queue()
    p = _start(put_big_and_exit, q)
    p.join(30)  # it exits before anything is read: no feeder thread to wait for
    assert p.exitcode == 0
    assert q.get() == b"x" * (10 * 1024 * 1024)
    assert q.get() == bytearray(3 * 1024 * 1024)
    arr = q.get()
    assert isinstance(arr, np.ndarray) and arr[-1] == 999_999 and arr.sum() == 499999500000
    assert [q.get() for _ in range(20_000)] == list(range(20_000))
    prefix = q._shared.prefix
    del arr
    del q, p
    gc.collect()
    assert _shm_names(prefix) == []


def test_sigkill_mid_transfer_leaves_no_shared_memory() -> None:
    q: Queue[Any] = Queue(3)
    ready: Queue[Any] = Queue()
    p = _start(put_forever, q, ready)
    assert ready.get(timeout=20) == "go"
    first = q.get(timeout=20)
    assert first.shape == (2 * 1024 * 1024,)
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    prefix = q._shared.prefix
    del q, ready, first
    gc.collect()
    assert _shm_names(prefix) == []


def test_coroutine_get_on_a_shared_queue_with_cancel() -> None:
    q: Queue[Any] = Queue()
    p = _start(put_range, q, "c", 0)
    p.join(10)

    async def main() -> None:
        waiting = asyncio.ensure_future(q.async_get())
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await q.async_put("a")
        q.put("b")
        assert await q.async_get() == "a"
        assert await q.async_get(timeout=5) == "b"
        with pytest.raises(Empty):
            await q.async_get(timeout=0.01)

    asyncio.run(main())


def test_ints_of_every_size_cross_as_themselves() -> None:
    q: Queue[Any] = Queue()
    items = [0, -5, 2**63 - 1, -(2**63), 2**63, -(2**100), True, False, 1.5, "7"]
    p = _start(put_items, q, items)
    p.join(20)
    got = [q.get(timeout=5) for _ in items]
    assert got == items and [type(x) for x in got] == [type(x) for x in items]


# -- LIFO and priority queues across processes ---------------------------------------------


def put_items(q: Queue[Any], items: list[Any]) -> None:
    for item in items:
        q.put(item)


def put_then_wait_for_room(q: Queue[Any], done: Queue[Any]) -> None:
    q.put(1)  # the queue (maxsize=1) is full now: this one waits for the parent's get
    q.put(0)
    done.put("both in")


def test_lifo_queue_crosses_and_keeps_lifo_order() -> None:
    q: LifoQueue[Any] = LifoQueue()
    q.put(("parent", 0))  # queued before the queue is shared: it stays at the bottom
    for tag in ("a", "b"):  # one after the other: the order across them is known
        p = _start(put_items, q, [(tag, i) for i in range(50)])
        p.join(20)
        assert p.exitcode == 0
    got = [q.get(timeout=5) for _ in range(101)]
    expected = [("b", i) for i in reversed(range(50))] + [("a", i) for i in reversed(range(50))]
    assert got == [*expected, ("parent", 0)]
    q.put("x")
    q.put("y")
    assert q.get_nowait() == "y"  # and in this process too


def test_priority_queue_crosses_and_gives_the_lowest_first() -> None:
    q: PriorityQueue[Any] = PriorityQueue()
    q.put((5, "parent"))
    rnd = random.Random(7)
    batches: list[list[Any]] = [
        [(rnd.randrange(1000), tag, i) for i in range(300)] for tag in ("a", "b")
    ]
    big = (500, "big", np.arange(600_000))  # over the spill size: compared from its segment
    batches[0].insert(150, big)
    procs = [_start(put_items, q, batch) for batch in batches]  # both at once
    for p in procs:
        p.join(20)
        assert p.exitcode == 0
    got = [q.get(timeout=5) for _ in range(602)]
    plain = [item for item in got if item[1] != "big"]
    assert plain == sorted(plain)
    assert [i for i, item in enumerate(got) if item[1] == "big"] == [
        sum(1 for item in plain if item < (500, "big"))
    ]
    big_got = next(item for item in got if item[1] == "big")
    assert (big_got[2] == big[2]).all()
    assert q.empty()


def test_priority_queue_rejects_an_item_it_cannot_order_and_loses_nothing() -> None:
    q: PriorityQueue[Any] = PriorityQueue()
    pickle.dumps(q)  # shared
    q.put((1, "one"))
    q.put((3, "three"))
    with pytest.raises(TypeError, match="PriorityQueue item must be comparable"):
        q.put(("x", "a string where a number was"))
    with pytest.raises(TypeError, match="comparable"):
        q.put(["big", bytes(3 * 1024 * 1024)])  # spilled before the comparison: removed
    assert [n for n in _shm_names(q._shared.prefix) if not n.endswith(_FIXED)] == []
    assert q.qsize() == 2 and q.unfinished_tasks == 2
    assert [q.get_nowait(), q.get_nowait()] == [(1, "one"), (3, "three")]


_FIXED = ("_ring", "_lock", "_items", "_space", "_done")


@pytest.mark.parametrize("cls", [Queue, LifoQueue, PriorityQueue])
def test_every_kind_keeps_the_queue_semantics_across_processes(cls: type[Queue[Any]]) -> None:
    inbox: Queue[Any] = cls(4)
    outbox: Queue[Any] = Queue()
    p = _start(echo_until_closed, inbox, outbox)
    for i in range(40):
        inbox.put(i)
    inbox.join()  # task_done in the child
    assert sorted(outbox.get(timeout=10) for _ in range(40)) == list(range(40))
    inbox.close()
    p.join(10)
    assert p.exitcode == 0  # `for item in inbox` ended on close
    with pytest.raises(ClosedError):
        inbox.put(1)
    with pytest.raises(ClosedError):
        inbox.get(timeout=1)

    small: Queue[Any] = cls(1)
    done: Queue[Any] = Queue()
    p = _start(put_then_wait_for_room, small, done)
    assert small.get(timeout=10) == 1  # the child's first put; its second one waited
    assert done.get(timeout=10) == "both in"
    with pytest.raises(Full):
        small.put_nowait(2)
    with pytest.raises(Full):
        small.put(2, timeout=0.01)
    assert small.get_nowait() == 0
    with pytest.raises(Empty):
        small.get(timeout=0.01)
    p.join(10)

    async def main() -> None:
        waiting = asyncio.ensure_future(small.async_get())
        await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await small.async_put(7)
        with pytest.raises(Full):
            await small.async_put(8, timeout=0.01)
        assert await small.async_get(timeout=5) == 7
        small.task_done()
        small.task_done()
        small.task_done()
        await small.async_join()

    asyncio.run(main())


def drain_into(inbox: Queue[Any], outbox: Queue[Any]) -> None:
    got = list(inbox)  # until closed and drained
    outbox.put(got)


@pytest.mark.parametrize("cls", [LifoQueue, PriorityQueue])
def test_ordered_queues_lose_nothing_with_processes_on_both_sides(
    cls: type[Queue[Any]],
) -> None:
    q: Queue[Any] = cls(16)  # bounded: producers and consumers wait on each other
    out: Queue[Any] = Queue()
    consumers = [_start(drain_into, q, out) for _ in range(2)]
    producers = [
        _start(put_items, q, [(i * 7919 % 1000, tag, i) for i in range(400)]) for tag in ("a", "b")
    ]
    for p in producers:
        p.join(30)
        assert p.exitcode == 0
    q.close()
    lists = [out.get(timeout=30) for _ in consumers]
    for p in consumers:
        p.join(10)
        assert p.exitcode == 0
    got = sorted(item for part in lists for item in part)
    assert got == sorted((i * 7919 % 1000, tag, i) for tag in ("a", "b") for i in range(400))


class _CustomStorage(Queue[Any]):
    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)


def test_a_queue_with_its_own_storage_cannot_cross() -> None:
    with pytest.raises(TypeError, match="its own storage"):
        pickle.dumps(_CustomStorage())
