"""select on queues and Events shared with processes.

A select takes at most one item (or makes at most one put) whatever races it loses, honours
``timeout``/``default``, works from threads and coroutines, and its helper threads (one
watcher per shared object and direction) are gone once no select waits.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait._channels import Queue, Selected, async_select, select
from plait._channels._select_shared import watcher_threads
from plait._core import CancelScope, move_on_after
from plait._errors import ClosedError
from plait._ipc.context import get_context
from plait._sync import Event
from plait.testing import async_wait_parked, wait_parked

JOIN_S = 20.0


def _start(target: Any, *args: Any) -> Any:
    ctx: Any = get_context()
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def _join(*procs: Any) -> None:
    for p in procs:
        p.join(JOIN_S)
        assert p.exitcode == 0


def _no_watchers_left() -> None:
    """Watcher threads wind down within a sleep slice once no select waits."""
    deadline = time.monotonic() + 5.0
    while watcher_threads():
        assert time.monotonic() < deadline, f"watcher threads left: {watcher_threads()}"
        time.sleep(0.005)


# -- children ------------------------------------------------------------------------------


def put_after_go(go: Queue[Any], q: Queue[Any], items: list[Any]) -> None:
    go.get()
    for item in items:
        q.put(item)


def put_range(q: Queue[Any], start: int, stop: int) -> None:
    for i in range(start, stop):
        q.put(i)


def drain_after_go(go: Queue[Any], q: Queue[Any], n: int, out: Queue[Any]) -> None:
    go.get()
    for _ in range(n):
        out.put(q.get())


def set_after_go(go: Queue[Any], event: Event) -> None:
    go.get()
    event.set()


def get_n(q: Queue[Any], n: int, out: Queue[Any]) -> None:
    out.put([q.get() for _ in range(n)])


def get_one(q: Queue[Any], out: Queue[Any]) -> None:
    out.put(q.get())


def select_in_child(q: Queue[Any], ev: Event, out: Queue[Any]) -> None:
    local: Queue[Any] = Queue()
    first = select(local.get_op(), q.get_op(), timeout=JOIN_S)
    second = select(local.get_op(), ev, timeout=JOIN_S)
    out.put([(first.index, first.value), (second.index, second.value)])


def nothing(*_args: Any) -> None:
    return None


def _share(*objs: Any) -> None:
    """Promote ``objs`` the way passing them to a process does (and let it end)."""
    _join(_start(nothing, *objs))


# -- tests ---------------------------------------------------------------------------------


def test_get_from_a_shared_queue_fed_by_a_process_or_a_local_one() -> None:
    shared: Queue[Any] = Queue()
    local: Queue[Any] = Queue()
    go: Queue[Any] = Queue()
    p = _start(put_after_go, go, shared, ["from child"])
    out: list[Selected] = []
    t = threading.Thread(
        target=lambda: out.append(select(local.get_op(), shared.get_op(), timeout=JOIN_S))
    )
    t.start()
    wait_parked(count=1)
    assert shared._shared is not None
    go.put(1)
    t.join(JOIN_S)
    _join(p)
    assert (out[0].index, out[0].value) == (1, "from child")
    assert shared.empty() and local.empty()
    # the local side still wins when it is the one that is ready
    local.put("local")
    r = select(shared.get_op(), local.get_op(), timeout=5)
    assert (r.index, r.value) == (1, "local")
    _no_watchers_left()


def test_select_with_a_process_strand_of_a_task_group() -> None:
    from plait._tasks import TaskGroup

    shared: Queue[Any] = Queue()
    local: Queue[Any] = Queue()
    go: Queue[Any] = Queue()
    with TaskGroup() as tg:
        task = tg.spawn(put_after_go, go, shared, ["x", "y"], on="process")
        r = select(local.get_op(), task, default=None)
        assert r.index == -1
        go.put(1)
        got = [select(local.get_op(), shared.get_op(), timeout=JOIN_S).value for _ in range(2)]
        assert got == ["x", "y"]
        r = select(local.get_op(), shared.get_op(), task, timeout=JOIN_S)
        assert r.index == 2 and r.value is task
    _no_watchers_left()


def test_a_process_selects_on_what_its_parent_shared() -> None:
    q: Queue[Any] = Queue()
    ev = Event()
    out: Queue[Any] = Queue()
    p = _start(select_in_child, q, ev, out)
    deadline = time.monotonic() + JOIN_S
    while not q.statistics().getters_waiting:  # the child's select waits (its watcher)
        assert time.monotonic() < deadline
        time.sleep(0.001)
    q.put("item")
    ev.set()
    assert out.get(timeout=JOIN_S) == [(1, "item"), (1, True)]
    _join(p)


def test_put_on_a_full_shared_queue_that_a_process_drains() -> None:
    q: Queue[Any] = Queue(1)
    q.put("first")
    go: Queue[Any] = Queue()
    out: Queue[Any] = Queue()
    p = _start(drain_after_go, go, q, 2, out)
    never: Queue[Any] = Queue()
    results: list[Selected] = []
    t = threading.Thread(
        target=lambda: results.append(select(never.get_op(), q.put_op("second"), timeout=JOIN_S))
    )
    t.start()
    wait_parked(count=1)
    go.put(1)
    t.join(JOIN_S)
    assert results[0].index == 1
    assert [out.get(timeout=JOIN_S), out.get(timeout=JOIN_S)] == ["first", "second"]
    _join(p)
    assert q.empty()
    _no_watchers_left()


def test_shared_event_set_by_a_process() -> None:
    ev = Event()
    go: Queue[Any] = Queue()
    local: Queue[Any] = Queue()
    p = _start(set_after_go, go, ev)
    assert select(local.get_op(), ev, default="idle").value == "idle"
    out: list[Selected] = []
    t = threading.Thread(target=lambda: out.append(select(local.get_op(), ev, timeout=JOIN_S)))
    t.start()
    wait_parked(count=1)
    go.put(1)
    t.join(JOIN_S)
    _join(p)
    assert (out[0].index, out[0].value) == (1, True)
    assert select(ev, timeout=0).index == 0  # still set: ready at once
    _no_watchers_left()


async def test_coroutine_selects_on_shared_queue_and_event() -> None:
    q: Queue[Any] = Queue()
    ev = Event()
    go: Queue[Any] = Queue()
    p = _start(put_after_go, go, q, ["a"])
    waiting = asyncio.ensure_future(async_select(ev, q.get_op()))
    await async_wait_parked(count=1)
    go.put(1)
    r = await asyncio.wait_for(waiting, JOIN_S)
    assert (r.index, r.value) == (1, "a")
    p2 = _start(set_after_go, go, ev)
    waiting = asyncio.ensure_future(async_select(q.get_op(), ev))
    await async_wait_parked(count=1)
    go.put(1)
    r = await asyncio.wait_for(waiting, JOIN_S)
    assert (r.index, r.value) == (1, True)
    await asyncio.to_thread(_join, p, p2)
    await asyncio.to_thread(_no_watchers_left)


def test_timeouts_and_default_on_shared_cases() -> None:
    q: Queue[Any] = Queue()
    full: Queue[Any] = Queue(1)
    full.put(0)
    ev = Event()
    _share(q, full, ev)
    assert select(q.get_op(), full.put_op(1), ev, default=None).index == -1
    with pytest.raises(TimeoutError):
        select(q.get_op(), full.put_op(1), ev, timeout=0.05)
    assert full.get_nowait() == 0 and full.empty() and q.empty()
    stats = q.statistics()
    assert stats.getters_waiting == 0 and stats.putters_waiting == 0
    _no_watchers_left()


async def test_async_timeout_on_shared_cases() -> None:
    q: Queue[Any] = Queue()
    ev = Event()
    await asyncio.to_thread(_share, q, ev)
    with pytest.raises(TimeoutError):
        await async_select(q.get_op(), ev, timeout=0.05)
    await asyncio.to_thread(_no_watchers_left)
    assert q.statistics().getters_waiting == 0


def test_closed_shared_queue_raises_from_select() -> None:
    q: Queue[Any] = Queue()
    _share(q)
    q.put(1)
    q.close()
    assert select(q.get_op()).value == 1
    with pytest.raises(ClosedError):
        select(q.get_op())
    with pytest.raises(ClosedError):
        select(q.put_op(2))


def test_closing_a_shared_queue_wakes_its_select() -> None:
    q: Queue[Any] = Queue()
    _share(q)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            select(q.get_op(), timeout=JOIN_S)
        except ClosedError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    wait_parked(count=1)
    q.close()
    t.join(JOIN_S)
    assert len(errors) == 1
    _no_watchers_left()


def test_a_queue_shared_while_a_select_waits_on_it() -> None:
    q: Queue[Any] = Queue()
    out: list[Selected] = []
    t = threading.Thread(target=lambda: out.append(select(q.get_op(), timeout=JOIN_S)))
    t.start()
    wait_parked(count=1)
    p = _start(put_range, q, 7, 8)  # pickling q shares it under the parked select
    t.join(JOIN_S)
    _join(p)
    assert out[0].value == 7
    assert q.empty()
    _no_watchers_left()


def test_an_event_shared_while_a_select_waits_on_it() -> None:
    ev = Event()
    go: Queue[Any] = Queue()
    _share(go)
    out: list[Selected] = []
    t = threading.Thread(target=lambda: out.append(select(ev, timeout=JOIN_S)))
    t.start()
    wait_parked(count=1)
    p = _start(set_after_go, go, ev)  # pickling ev shares it under the parked select
    go.put(1)
    t.join(JOIN_S)
    _join(p)
    assert (out[0].index, out[0].value) == (0, True)
    assert ev.statistics().waiting == 0
    _no_watchers_left()


def test_cancel_a_thread_parked_on_a_shared_queue() -> None:
    q: Queue[Any] = Queue()
    _share(q)
    scopes: list[CancelScope] = []
    out: list[bool] = []

    def run() -> None:
        with CancelScope() as scope:
            scopes.append(scope)
            select(q.get_op(), timeout=JOIN_S)
        out.append(scope.cancelled_caught)

    t = threading.Thread(target=run)
    t.start()
    wait_parked(count=1)
    scopes[0].cancel()
    t.join(JOIN_S)
    assert out == [True]
    q.put("kept")
    assert q.get(timeout=5) == "kept"
    assert q.statistics().getters_waiting == 0
    _no_watchers_left()


async def _select_cancelled_next_to_a_sleeping_process() -> None:
    q: Queue[Any] = Queue()
    out: Queue[Any] = Queue()
    p = _start(get_one, q, out)
    waiting = asyncio.ensure_future(async_select(q.get_op(), timeout=JOIN_S))
    await async_wait_parked(count=1)
    deadline = time.monotonic() + JOIN_S
    while q.statistics().getters_waiting < 2:  # the select's watcher and the child sleep
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    q.put("x")  # its post may go to the watcher, which fires the select...
    waiting.cancel()  # ...which is cancelled before it can take: the post must go on
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.to_thread(out.get, timeout=JOIN_S) == "x"
    await asyncio.to_thread(_join, p)


async def test_a_cancelled_select_passes_its_wakeup_on_to_a_process() -> None:
    for _ in range(3):
        await _select_cancelled_next_to_a_sleeping_process()
    await asyncio.to_thread(_no_watchers_left)


def test_many_selects_on_a_shared_queue_start_no_thread() -> None:
    q: Queue[Any] = Queue()
    _share(q)
    n = 8
    got: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        r = select(q.get_op(), timeout=JOIN_S)
        with lock:
            got.append(r.value)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    wait_parked(count=n)
    assert watcher_threads() == []  # they wait in the queue's room, rung by the doorbell
    assert [t.name for t in threading.enumerate()].count("plait-doorbell") == 1
    for i in range(n):
        q.put(i)
    for t in threads:
        t.join(JOIN_S)
    assert sorted(got) == list(range(n))
    _no_watchers_left()


def _consume(qs: list[Queue[Any]], got: list[Any], lock: threading.Lock) -> None:
    live = list(qs)
    while live:
        try:
            r = select(*(q.get_op() for q in live), timeout=JOIN_S)
        except ClosedError:
            live = [q for q in live if not (q.closed and q.empty())]
            continue
        with lock:
            got.append(r.value)


async def _async_consume(qs: list[Queue[Any]], got: list[Any], lock: threading.Lock) -> None:
    live = list(qs)
    while live:
        try:
            r = await async_select(*(q.get_op() for q in live), timeout=JOIN_S)
        except ClosedError:
            live = [q for q in live if not (q.closed and q.empty())]
            continue
        with lock:
            got.append(r.value)


def _no_item_lost_or_duplicated(n: int) -> None:
    shared_a: Queue[Any] = Queue(8)
    shared_b: Queue[Any] = Queue()
    local: Queue[Any] = Queue(4)
    qs = [shared_a, shared_b, local]
    got: list[Any] = []
    lock = threading.Lock()
    third = n // 3
    procs = [
        _start(put_range, shared_a, 0, third),
        _start(put_range, shared_b, third, 2 * third),
    ]
    consumers = [
        threading.Thread(target=_consume, args=(qs, got, lock), daemon=True) for _ in range(2)
    ]
    consumers.append(
        threading.Thread(target=lambda: asyncio.run(_async_consume(qs, got, lock)), daemon=True)
    )
    for t in consumers:
        t.start()
    for i in range(2 * third, n):  # and a thread producer, which selects between queues
        select(local.put_op(i), shared_a.put_op(i), timeout=JOIN_S)
    _join(*procs)
    for q in qs:
        q.close()
    for t in consumers:
        t.join(JOIN_S)
        assert not t.is_alive()
    assert sorted(got) == list(range(n))
    _no_watchers_left()


def test_no_item_lost_or_duplicated_with_process_producers() -> None:
    _no_item_lost_or_duplicated(900)


@pytest.mark.slow
def test_no_item_lost_or_duplicated_with_process_producers_long() -> None:
    for _ in range(10):
        _no_item_lost_or_duplicated(9000)


def test_selects_put_into_a_shared_queue_a_process_consumes() -> None:
    q: Queue[Any] = Queue(2)
    out: Queue[Any] = Queue()
    n = 300
    p = _start(get_n, q, n, out)
    other: Queue[Any] = Queue(1)
    other.put("full")

    def produce(k: int) -> None:
        for i in range(k, n, 3):
            r = select(other.put_op(("never", i)), q.put_op(i), timeout=JOIN_S)
            assert r.index == 1

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert sorted(out.get(timeout=JOIN_S)) == list(range(n))
    _join(p)
    assert other.get_nowait() == "full" and other.empty()
    _no_watchers_left()


# -- property: with cancellations and timeouts mixed in, nothing is lost or duplicated ------


def _consume_with_cancels(
    qs: list[Queue[Any]],
    got: list[Any],
    lock: threading.Lock,
    cancel_after: float,
    stop: threading.Event,
) -> None:
    live = list(qs)
    while live and not stop.is_set():  # (stop: the test failed; do not spin on for ever)
        try:
            with move_on_after(cancel_after):  # a select cut short takes nothing
                r = select(*(q.get_op() for q in live), timeout=JOIN_S)
                with lock:
                    got.append(r.value)
        except ClosedError:
            live = [q for q in live if not (q.closed and q.empty())]


async def _async_consume_with_cancels(
    qs: list[Queue[Any]],
    got: list[Any],
    lock: threading.Lock,
    cancel_after: float,
    stop: threading.Event,
) -> None:
    live = list(qs)
    while live and not stop.is_set():
        try:
            async with move_on_after(cancel_after):
                r = await async_select(*(q.get_op() for q in live), timeout=JOIN_S)
                with lock:
                    got.append(r.value)
        except ClosedError:
            live = [q for q in live if not (q.closed and q.empty())]


def _consume_all_with_cancels(
    qs: list[Queue[Any]], threads: int, coroutine: bool, cancel_after: float, produce: Any
) -> list[Any]:
    """Consume ``qs`` with cancel-riddled selects in ``threads`` threads and maybe a
    coroutine while ``produce()`` fills them; close them and return what was taken. The
    consumers end even when the test fails (a stop flag; daemon threads)."""
    got: list[Any] = []
    lock = threading.Lock()
    stop = threading.Event()
    consumers = [
        threading.Thread(
            target=_consume_with_cancels, args=(qs, got, lock, cancel_after, stop), daemon=True
        )
        for _ in range(threads)
    ]
    if coroutine:
        consumers.append(
            threading.Thread(
                target=lambda: asyncio.run(
                    _async_consume_with_cancels(qs, got, lock, cancel_after, stop)
                ),
                daemon=True,
            )
        )
    try:
        for t in consumers:
            t.start()
        produce()
        for q in qs:
            q.close()
        for t in consumers:
            t.join(JOIN_S)
            assert not t.is_alive(), (
                "a consumer still runs after every queue was closed: "
                + ", ".join(f"{q!r} kept {q._ready} of {len(q._sized)}" for q in qs)
            )
    finally:
        stop.set()
        for q in qs:
            q.close()
    return got


@pytest.mark.parametrize("seed", range(8))
def test_cancel_riddled_selects_over_a_shared_and_a_local_queue_lose_nothing(seed: int) -> None:
    """Threads fill a shared and a local queue while selects with short cancel scopes take
    from both. (A scope's deadline passing while a select withdrew from the shared queue
    stranded an item the local queue had kept for that select: the consumers then spun for
    ever on a closed queue that still held it.)"""
    import pickle
    import random

    rnd = random.Random(seed)
    for _ in range(5):
        n, maxsize = rnd.randint(20, 200), rnd.randint(0, 3)
        shared: Queue[Any] = Queue(maxsize)
        pickle.dumps(shared)  # shared with processes from now on (no process needed)
        local: Queue[Any] = Queue(maxsize)

        def produce(n: int = n, shared: Queue[Any] = shared, local: Queue[Any] = local) -> None:
            half = n // 2
            filler = threading.Thread(
                target=lambda: [shared.put(i, timeout=JOIN_S) for i in range(half)], daemon=True
            )
            filler.start()
            for i in range(half, n):
                local.put(i, timeout=JOIN_S)
            filler.join(JOIN_S)
            assert not filler.is_alive()

        got = _consume_all_with_cancels(
            [shared, local],
            rnd.randint(1, 2),
            rnd.random() < 0.5,
            rnd.choice([5e-4, 5e-3]),
            produce,
        )
        assert sorted(got) == list(range(n))


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(1, 300),
    maxsize=st.integers(0, 3),
    threads=st.integers(0, 2),
    coroutine=st.booleans(),
    cancel_after=st.sampled_from([0.0, 0.0005, 0.005, 1.0]),
)
def test_property_no_loss_with_cancels(
    n: int, maxsize: int, threads: int, coroutine: bool, cancel_after: float
) -> None:
    if not threads and not coroutine:
        threads = 1
    shared: Queue[Any] = Queue(maxsize)
    local: Queue[Any] = Queue(maxsize)
    half = n // 2
    p = _start(put_range, shared, 0, half)

    def produce() -> None:
        try:
            for i in range(half, n):
                local.put(i, timeout=JOIN_S)
        finally:
            _join(p)

    got = _consume_all_with_cancels([shared, local], threads, coroutine, cancel_after, produce)
    assert sorted(got) == list(range(n))
    _no_watchers_left()
