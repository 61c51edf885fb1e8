"""The queue family in one process: stdlib parity, async forms, close, mixed strands."""

from __future__ import annotations

import asyncio
import queue as stdqueue
import sys
import threading

import pytest

from plait._channels import Empty, Full, LifoQueue, PriorityQueue, Queue, ShutDown, SimpleQueue
from plait._errors import ClosedError, WouldBlock
from plait.testing import wait_parked
from plait.testing._kit import async_wait_parked

PAIRS = [
    (stdqueue.Queue, Queue),
    (stdqueue.LifoQueue, LifoQueue),
    (stdqueue.PriorityQueue, PriorityQueue),
]


def _outcome(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        for base in (stdqueue.Empty, stdqueue.Full, ValueError, TypeError):
            if isinstance(exc, base):
                return ("raise", base.__name__)
        raise


SCRIPT = [
    ("put", (3,), {}),
    ("put", (1,), {}),
    ("put_nowait", (2,), {}),
    ("qsize", (), {}),
    ("full", (), {}),
    ("put", (9,), {"block": False}),
    ("put", (9,), {"timeout": 0}),
    ("put", (9,), {"timeout": 0.01}),
    ("get", (), {}),
    ("get", (), {"timeout": -1}),
    ("put", (5,), {"timeout": -1}),
    ("empty", (), {}),
    ("get_nowait", (), {}),
    ("task_done", (), {}),
    ("task_done", (), {}),
    ("get", (), {"block": False}),
    ("get", (), {"block": True, "timeout": 0}),
    ("get", (), {"block": False, "timeout": -1}),
    ("get", (), {"timeout": 0.01}),
    ("empty", (), {}),
    ("task_done", (), {}),
    ("task_done", (), {}),
    ("put", (4,), {}),
    ("get", (), {}),
    ("task_done", (), {}),
    ("join", (), {}),
    ("qsize", (), {}),
]


@pytest.mark.parametrize(("std", "ours"), PAIRS)
def test_same_calls_same_outcomes_as_stdlib(std, ours):  # type: ignore[no-untyped-def]
    a, b = std(3), ours(3)
    for name, args, kwargs in SCRIPT:
        expected = _outcome(getattr(a, name), *args, **kwargs)
        got = _outcome(getattr(b, name), *args, **kwargs)
        assert got == expected, (name, args, kwargs)
    assert a.maxsize == b.maxsize


def test_simple_queue_matches_stdlib() -> None:
    a, b = stdqueue.SimpleQueue(), SimpleQueue()
    for q in (a, b):
        q.put(1)
        q.put_nowait(2)
        q.put(3, block=False, timeout=5)
    assert [b.get(), b.get_nowait(), b.get(timeout=1)] == [a.get(), a.get_nowait(), a.get(1)]
    assert b.empty() and a.empty() and b.qsize() == a.qsize() == 0
    with pytest.raises(stdqueue.Empty):
        b.get(timeout=0.001)


def test_errors_are_stdlib_and_would_block() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(stdqueue.Empty) as empty:
        q.get_nowait()
    assert isinstance(empty.value, WouldBlock) and isinstance(empty.value, Empty)
    q.put(1)
    with pytest.raises(stdqueue.Full) as full:
        q.put_nowait(2)
    assert isinstance(full.value, WouldBlock) and isinstance(full.value, Full)


@pytest.mark.parametrize("bad", ["3", 2.5, None, True])
def test_maxsize_of_wrong_type(bad: object) -> None:
    with pytest.raises(TypeError, match="maxsize must be an int"):
        Queue(bad)  # type: ignore[arg-type]


def test_negative_timeout_keeps_items() -> None:
    q: Queue[int] = Queue()
    q.put(1)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    assert q.get_nowait() == 1


def test_priority_and_lifo_order() -> None:
    p: PriorityQueue[int] = PriorityQueue()
    lifo: LifoQueue[int] = LifoQueue()
    for x in (5, 1, 3):
        p.put(x)
        lifo.put(x)
    assert [p.get() for _ in range(3)] == [1, 3, 5]
    assert [lifo.get() for _ in range(3)] == [3, 1, 5]


# -- close -------------------------------------------------------------------------------


def test_close_drains_then_raises() -> None:
    q: Queue[int] = Queue()
    q.put(1)
    q.put(2)
    q.close()
    q.close()  # idempotent
    assert q.closed
    with pytest.raises(ClosedError):
        q.put(3)
    assert list(q) == [1, 2]
    with pytest.raises(ClosedError):
        q.get()
    with pytest.raises(ClosedError):
        q.get_nowait()


def test_close_wakes_parked_getters_and_putters() -> None:
    q: Queue[int] = Queue(1)
    q.put(0)
    errors: list[BaseException] = []

    def putter() -> None:
        try:
            q.put(1)
        except ClosedError as exc:
            errors.append(exc)

    t = threading.Thread(target=putter)
    t.start()
    wait_parked(on=q, count=1)
    q.close()
    t.join()
    assert len(errors) == 1
    assert q.get() == 0  # what was queued is not lost

    g: Queue[int] = Queue()
    got: list[object] = []

    def getter() -> None:
        try:
            got.append(g.get())
        except ClosedError as exc:
            got.append(exc)

    threads = [threading.Thread(target=getter) for _ in range(3)]
    for th in threads:
        th.start()
    wait_parked(on=g, count=3)
    g.close()
    for th in threads:
        th.join()
    assert all(isinstance(x, ClosedError) for x in got)


def test_iteration_ends_on_close_sync_and_async() -> None:
    q: Queue[int] = Queue(2)
    out: list[int] = []

    async def consume() -> None:
        async for x in q:
            out.append(x)

    def produce() -> None:
        for i in range(100):
            q.put(i)
        q.close()

    t = threading.Thread(target=produce)
    t.start()
    asyncio.run(consume())
    t.join()
    assert out == list(range(100))


async def test_async_close_wakes_async_getter() -> None:
    q: Queue[int] = Queue()
    task = asyncio.ensure_future(q.async_get())
    await async_wait_parked(on=q, count=1)
    q.close()
    with pytest.raises(ClosedError):
        await task


# -- waiting, timeouts, join -------------------------------------------------------------


def test_put_blocks_until_room_fifo_between_putters() -> None:
    q: Queue[int] = Queue(1)
    q.put(0)
    threads = []
    for i in (1, 2, 3):
        t = threading.Thread(target=q.put, args=(i,))
        t.start()
        threads.append(t)
        wait_parked(on=q, count=i)
    assert [q.get() for _ in range(4)] == [0, 1, 2, 3]
    for t in threads:
        t.join()


def test_timeouts_raise_stdlib_errors() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(stdqueue.Empty):
        q.get(timeout=0.01)
    q.put(1)
    with pytest.raises(stdqueue.Full):
        q.put(2, timeout=0.01)
    assert q.get() == 1 and q.empty()


async def test_async_timeouts() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(stdqueue.Empty):
        await q.async_get(timeout=0.01)
    await q.async_put(1)
    with pytest.raises(stdqueue.Full):
        await q.async_put(2, timeout=0.01)
    with pytest.raises(stdqueue.Full):
        await q.async_put(2, block=False)
    assert await q.async_get() == 1
    with pytest.raises(stdqueue.Empty):
        await q.async_get(block=False)


def test_join_waits_for_task_done() -> None:
    q: Queue[int] = Queue()
    done: list[int] = []

    def worker() -> None:
        for item in q:
            done.append(item)
            q.task_done()

    t = threading.Thread(target=worker)
    t.start()
    for i in range(50):
        q.put(i)
    q.join()
    assert done == list(range(50))
    assert q.unfinished_tasks == 0
    q.close()
    t.join()


async def test_async_join() -> None:
    q: Queue[int] = Queue()
    await q.async_put(1)

    async def worker() -> None:
        await q.async_get()
        q.task_done()

    task = asyncio.ensure_future(worker())
    await q.async_join()
    await task


# -- cancellation keeps items ------------------------------------------------------------


async def test_cancelled_getter_after_handoff_gives_item_back() -> None:
    q: Queue[int] = Queue()
    task = asyncio.ensure_future(q.async_get())
    await async_wait_parked(on=q, count=1)
    q.put(1)  # handed to the parked task...
    q.put(2)
    task.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [q.get_nowait(), q.get_nowait()] == [1, 2]
    assert q.unfinished_tasks == 2


async def test_cancelled_putter_after_slot_passes_it_on() -> None:
    q: Queue[int] = Queue(1)
    q.put(0)
    first = asyncio.ensure_future(q.async_put(1))
    second = asyncio.ensure_future(q.async_put(2))
    await async_wait_parked(on=q, count=2)
    assert q.get_nowait() == 0  # slot reserved for `first`...
    first.cancel()  # ...which is cancelled: the slot goes to `second`
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert q.get_nowait() == 2
    assert q.empty()


# -- mixed strands -----------------------------------------------------------------------


def test_threads_and_coroutines_on_two_loops_share_one_queue() -> None:
    q: Queue[tuple[str, int]] = Queue(8)
    n = 300
    results: dict[str, list[tuple[str, int]]] = {}

    async def aconsume(name: str) -> None:
        got = results.setdefault(name, [])
        async for item in q:
            got.append(item)

    produced: list[threading.Event] = [threading.Event() for _ in range(3)]

    async def aproduce(name: str) -> None:
        for i in range(n):
            await q.async_put((name, i))
        produced[int(name[-1])].set()

    def loop_thread(name: str) -> None:
        async def main() -> None:
            await asyncio.gather(aproduce(name), aconsume(name))

        asyncio.run(main())

    def tconsume(name: str) -> None:
        got = results.setdefault(name, [])
        for item in q:
            got.append(item)

    def tproduce(name: str) -> None:
        for i in range(n):
            q.put((name, i))
        produced[0].set()

    producers = [threading.Thread(target=tproduce, args=("t",))]
    consumers = [threading.Thread(target=tconsume, args=("tc",))]
    loops = [threading.Thread(target=loop_thread, args=(f"loop{i}",)) for i in (1, 2)]
    for th in producers + consumers + loops:
        th.start()
    for ev in produced:
        assert ev.wait(30)
    q.close()
    for th in producers:
        th.join()
    for th in consumers + loops:
        th.join()
    everything = [x for got in results.values() for x in got]
    assert len(everything) == 3 * n
    assert sorted(everything) == sorted([(p, i) for p in ("t", "loop1", "loop2") for i in range(n)])
    for got in results.values():
        for producer in ("t", "loop1", "loop2"):
            seq = [i for p, i in got if p == producer]
            assert seq == sorted(seq)


def test_statistics() -> None:
    q: Queue[int] = Queue(4)
    q.put(1)
    s = q.statistics()
    assert (s.qsize, s.maxsize, s.unfinished_tasks, s.closed, s.shared) == (1, 4, 1, False, False)
    assert "size=1/4" in repr(q)


def test_stdlib_clear_idiom_under_the_mutex() -> None:
    q: Queue[int] = Queue()
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    t.start()
    wait_parked(on=q, count=1)
    with q.mutex:  # what queue.Queue users do to drop everything queued
        q.queue.clear()
    q.put(5)
    t.join()
    assert got == [5]
    q.put(1)
    with q.mutex:
        q.queue.clear()
    assert q.empty()


async def test_cleared_while_an_item_was_kept_for_a_getter() -> None:
    q: Queue[int] = Queue()
    task = asyncio.ensure_future(q.async_get())
    await async_wait_parked(on=q, count=1)
    q.put(1)  # kept for the parked task...
    with q.mutex:
        q.queue.clear()  # ...and dropped before it resumes
    await asyncio.sleep(0)
    assert not task.done()  # it waits again instead of failing
    q.put(2)
    assert await task == 2


def test_uvloop_coroutines_and_a_thread() -> None:
    uvloop = pytest.importorskip("uvloop")
    q: Queue[int] = Queue(4)
    back: Queue[int] = Queue()

    def thread_side() -> None:
        for i in range(300):
            q.put(i)
        q.close()

    async def main() -> list[int]:
        async def relay() -> None:
            async for x in q:
                await back.async_put(x)
            back.close()

        task = asyncio.ensure_future(relay())
        got = [x async for x in back]
        await task
        return got

    t = threading.Thread(target=thread_side)
    t.start()
    assert uvloop.run(main()) == list(range(300))
    t.join()


def test_parked_coroutine_is_its_own_strand_loop_after_loop() -> None:
    """A coroutine getter parks as its task's strand, on each new loop of a thread (the queue
    remembers the thread's loop to skip a system call; a closed loop must not fool it)."""
    from plait._core import current_strand

    async def once() -> None:
        q: Queue[int] = Queue()
        me: list[object] = []

        async def getter() -> int:
            me.append(current_strand())
            return await q.async_get()

        task = asyncio.ensure_future(getter())
        await async_wait_parked(on=q, count=1)
        (strand,) = me
        assert strand.state == "parked"  # type: ignore[attr-defined]
        assert strand.parked_on is q  # type: ignore[attr-defined]
        q.put(7)
        assert await task == 7
        assert strand.state != "parked"  # type: ignore[attr-defined]

    for _ in range(3):
        asyncio.run(once())
    uvloop = pytest.importorskip("uvloop")
    uvloop.run(once())
    done: list[bool] = []
    t = threading.Thread(target=lambda: (asyncio.run(once()), done.append(True)))
    t.start()
    t.join()
    assert done == [True]


@pytest.mark.parametrize("timeout", [None, 30.0])
@pytest.mark.parametrize("from_thread", [False, True])
def test_item_kept_for_a_coroutine_whose_loop_closed_goes_to_the_next_getter(
    timeout: float | None, from_thread: bool
) -> None:
    """A loop closed with a coroutine still parked on a get (a bug in user code): the item a
    later put keeps for it is given back, not lost, and the next getter takes it."""
    q: Queue[str] = Queue()
    loop = asyncio.new_event_loop()
    task = loop.create_task(q.async_get(timeout=timeout))
    loop.run_until_complete(async_wait_parked(on=q, count=1))
    loop.close()
    if from_thread:
        t = threading.Thread(target=q.put, args=("kept",))
        t.start()
        t.join()
    else:
        q.put("kept")
    assert q.get(timeout=5) == "kept"
    task.get_coro().close()  # what garbage collection would do: no second give-back
    task._log_destroy_pending = False  # type: ignore[attr-defined] # (its loop is gone)
    assert q.qsize() == 0
    assert q.statistics().getters_waiting == 0


def test_slot_kept_for_a_coroutine_putter_whose_loop_closed_goes_to_the_next_putter() -> None:
    q: Queue[str] = Queue(1)
    q.put("first")
    loop = asyncio.new_event_loop()
    task = loop.create_task(q.async_put("lost with its loop"))
    loop.run_until_complete(async_wait_parked(on=q, count=1))
    loop.close()
    assert q.get() == "first"  # frees the slot, kept for the dead putter: it is given back
    q.put("second", timeout=5)
    assert q.get_nowait() == "second"
    task.get_coro().close()
    task._log_destroy_pending = False  # type: ignore[attr-defined] # (its loop is gone)
    assert q.empty()


async def test_coroutine_strand_of_a_task_group_parks_as_itself() -> None:
    """A coroutine spawned by a plait TaskGroup parks on a queue as its own strand."""
    import plait
    from plait._core import current_strand

    q: Queue[int] = Queue()
    seen: list[object] = []

    async def getter() -> int:
        seen.append(current_strand())
        return await q.async_get()

    async with plait.TaskGroup() as tg:
        task = tg.spawn(getter)
        await async_wait_parked(on=q, count=1)
        (strand,) = seen
        assert strand.state == "parked"  # type: ignore[attr-defined]
        assert strand.parked_on is q  # type: ignore[attr-defined]
        await q.async_put(5)
    assert task.result() == 5


# -- the stdlib's storage hooks (_init, _qsize, _put, _get) ------------------------------


def _recording(base: type[Queue[int]]) -> type[Queue[int]]:
    """A subclass that overrides _put/_get/_qsize but not _init, recording each call."""

    class Recording(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: int) -> None:
            self.calls: list[str] = []
            super().__init__(*args)

        def _put(self, item: int) -> None:
            self.calls.append(f"put {item}")
            super()._put(item)

        def _get(self) -> int:
            item = super()._get()
            self.calls.append(f"get {item}")
            return item  # type: ignore[no-any-return]

        def _qsize(self) -> int:
            self.calls.append("qsize")
            return super()._qsize()

    return Recording


@pytest.mark.parametrize("base", [Queue, LifoQueue, PriorityQueue, SimpleQueue])
def test_a_subclass_storage_hooks_are_called_without_an_init_override(
    base: type[Queue[int]],
) -> None:
    cls = _recording(base)
    q = cls() if base is SimpleQueue else cls(4)
    q.put(1)
    q.put_nowait(2)
    assert q.qsize() == 2 and "qsize" in q.calls
    got = [q.get(), q.get_nowait()]
    assert sorted(got) == [1, 2]
    assert [c for c in q.calls if c != "qsize"] == ["put 1", "put 2", *(f"get {x}" for x in got)]
    assert not cls._plain_storage and getattr(q, "_fast_put", None) is None


@pytest.mark.parametrize("base", [Queue, LifoQueue, PriorityQueue])
async def test_a_subclass_storage_hooks_are_called_by_the_async_forms(
    base: type[Queue[int]],
) -> None:
    q = _recording(base)(4)
    await q.async_put(1)
    assert await q.async_get() == 1
    getter = asyncio.ensure_future(q.async_get())
    await async_wait_parked(on=q, count=1)
    await q.async_put(2)  # handed to the parked getter, through _put and then _get
    assert await asyncio.wait_for(getter, 10) == 2
    assert [c for c in q.calls if c != "qsize"] == ["put 1", "get 1", "put 2", "get 2"]


def test_select_on_a_subclass_calls_its_storage_hooks() -> None:
    from plait import select

    q = _recording(Queue)(1)
    assert select(q.put_op(1), timeout=10).index == 0
    assert select(q.get_op(), timeout=10).value == 1
    getter = threading.Thread(target=lambda: select(q.get_op(), timeout=10))
    getter.start()
    wait_parked(count=1)  # (a select parks on itself, not on the queue)
    q.put(2)  # offered to the parked select, taken through _get
    getter.join(10)
    assert [c for c in q.calls if c != "qsize"] == ["put 1", "get 1", "put 2", "get 2"]


def test_a_subclass_with_its_own_storage_works_across_threads() -> None:
    """_init with another container: a set that drops duplicates, popped smallest first."""

    class Distinct(Queue[int]):
        def _init(self, maxsize: int) -> None:
            self.queue = set()

        def _qsize(self) -> int:
            return len(self.queue)

        def _put(self, item: int) -> None:
            self.queue.add(item)

        def _get(self) -> int:
            item = min(self.queue)
            self.queue.remove(item)
            return item

    q = Distinct(2)
    q.put_nowait(5)
    q.put_nowait(5)  # dropped: no room taken
    q.put_nowait(3)
    assert q.qsize() == 2 and q.get() == 3 and q.get() == 5
    got: list[int] = []
    getter = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    getter.start()
    wait_parked(on=q, count=1)
    q.put(7)  # handed to the parked getter through _put and _get
    getter.join(10)
    assert got == [7]
    q.put(2)
    q.put(1)
    putter = threading.Thread(target=q.put, args=(9,), kwargs={"timeout": 10})
    putter.start()
    wait_parked(on=q, count=1)
    assert q.get() == 1  # frees a slot: the parked putter puts
    putter.join(10)
    assert [q.get_nowait() for _ in range(2)] == [2, 9]


def test_a_subclass_without_overrides_keeps_the_fast_storage() -> None:
    class Plain(LifoQueue[int]):
        def extra(self) -> int:
            return 1

    assert Plain._plain_storage and LifoQueue._plain_storage and SimpleQueue._plain_storage
    q = Plain()
    q.put(1)
    q.put(2)
    assert q.get() == 2
    assert q._sized is q.queue  # the storage itself, not the hooks


def test_a_failing_get_hook_in_a_woken_getter_passes_the_item_on() -> None:
    """The getter woken for an item whose _get raises gets the error; the item stays and the
    next getter takes it."""

    class FailOnce(Queue[int]):
        fail = True

        def _get(self) -> int:
            if self.fail:
                self.fail = False
                raise KeyError("once")
            return super()._get()  # type: ignore[no-any-return]

    q = FailOnce()
    errors: list[BaseException] = []
    got: list[int] = []

    def first() -> None:
        try:
            q.get(timeout=10)
        except KeyError as exc:
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    wait_parked(on=q, count=1)
    q.put(1)
    t.join(10)
    assert len(errors) == 1
    t2 = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    t2.start()
    t2.join(10)
    assert got == [1] and q.qsize() == 0


# -- shutdown (queue.Queue.shutdown, 3.13) is close() --------------------------------------


def test_shutdown_is_close_and_shutdown_is_a_closed_error() -> None:
    q: Queue[int] = Queue()
    q.put(1)
    assert not q.is_shutdown
    q.shutdown()
    assert q.is_shutdown and q.closed
    with pytest.raises(ShutDown) as caught:
        q.put(2)
    assert isinstance(caught.value, ClosedError)
    assert q.get() == 1  # (not immediate: what is queued is still there)
    with pytest.raises(ShutDown):
        q.get()
    q.close()  # idempotent, and the same thing
    assert list(q) == []


@pytest.mark.skipif(sys.version_info < (3, 13), reason="queue.ShutDown is new in Python 3.13")
def test_shutdown_is_the_stdlib_shutdown_on_3_13() -> None:
    q: Queue[int] = Queue()
    q.close()
    with pytest.raises(stdqueue.ShutDown):  # type: ignore[attr-defined,unused-ignore]
        q.get_nowait()


def test_shutdown_immediate_discards_counts_done_and_wakes_everyone() -> None:
    q: Queue[int] = Queue(1)
    q.put(1)
    outcomes: list[str] = []

    def put() -> None:
        try:
            q.put(2, timeout=10)
        except ShutDown:
            outcomes.append("put: ShutDown")

    def join() -> None:
        q.join()
        outcomes.append("joined")

    threads = [threading.Thread(target=put), threading.Thread(target=join)]
    for t in threads:
        t.start()
    wait_parked(on=q, count=2)
    q.shutdown(immediate=True)
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["joined", "put: ShutDown"]
    assert q.qsize() == 0 and q.unfinished_tasks == 0
    with pytest.raises(ShutDown):
        q.get_nowait()
    with pytest.raises(ValueError, match="too many"):
        q.task_done()


async def test_shutdown_immediate_wakes_parked_coroutine_getters() -> None:
    q: Queue[int] = Queue()
    getters = [asyncio.ensure_future(q.async_get()) for _ in range(2)]
    await async_wait_parked(on=q, count=2)
    q.shutdown(immediate=True)
    for g in getters:
        with pytest.raises(ShutDown):
            await asyncio.wait_for(g, 10)


def test_assigning_maxsize_resizes_the_queue() -> None:
    q: Queue[int] = Queue(1)
    q.put(1)
    t = threading.Thread(target=q.put, args=(2,), kwargs={"timeout": 10})
    t.start()
    wait_parked(on=q, count=1)
    q.maxsize = 2  # room for the parked putter
    t.join(10)
    assert not t.is_alive() and q.qsize() == 2
    q.maxsize = 1  # shrinking keeps what is queued; puts wait again
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(TypeError, match="maxsize must be an int"):
        q.maxsize = "2"  # type: ignore[assignment]
