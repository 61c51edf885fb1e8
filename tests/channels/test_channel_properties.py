"""Property tests: no item lost, duplicated or reordered (FIFO per producer).

* A stateful machine drives one queue from plain calls and from coroutine getters and
  putters on one loop, stepping the loop by hand, with cancellations and close: every
  interleaving it finds is deterministic and replayable.
* A concurrent run mixes producers and consumers of every kind -- threads, coroutines on
  two loops, and (separately) processes -- with timeouts, cancellations and close.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from plait._channels import Empty, Full, Queue
from plait._errors import ClosedError
from plait._ipc.context import get_context


def _check_fifo(received: list[tuple[str, int]]) -> None:
    last: dict[str, int] = {}
    for producer, i in received:
        assert i > last.get(producer, -1), f"{producer} reordered: {i} after {last[producer]}"
        last[producer] = i


class QueueMachine(RuleBasedStateMachine):
    """One queue, plain calls and coroutines on one hand-stepped loop."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.q: Queue[tuple[str, int]] = Queue(0)
        self.next = 0
        self.put_ok: list[tuple[str, int]] = []
        self.got: list[tuple[str, int]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.closed = False

    @rule(maxsize=st.integers(0, 3))
    @precondition(lambda self: self.next == 0 and not self.tasks)
    def resize(self, maxsize: int) -> None:
        self.q = Queue(maxsize)

    @rule()
    def put_nowait(self) -> None:
        item = ("main", self.next)
        try:
            self.q.put_nowait(item)
        except Full:
            return
        except ClosedError:
            assert self.closed
            return
        self.next += 1
        self.put_ok.append(item)

    @rule()
    def get_nowait(self) -> None:
        try:
            self.got.append(self.q.get_nowait())
        except Empty:
            pass
        except ClosedError:
            assert self.closed

    @rule()
    def spawn_getter(self) -> None:
        task = self.loop.create_task(self.q.async_get())

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is None:
                self.got.append(t.result())
            elif not t.cancelled():
                assert isinstance(t.exception(), ClosedError)

        task.add_done_callback(done)
        self.tasks.append(task)

    @rule()
    def spawn_putter(self) -> None:
        item = (f"task{len(self.tasks)}", 0)
        task = self.loop.create_task(self.q.async_put(item))

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is None:
                self.put_ok.append(item)
            elif not t.cancelled():
                assert isinstance(t.exception(), ClosedError)

        task.add_done_callback(done)
        self.tasks.append(task)

    @rule(data=st.data())
    @precondition(lambda self: any(not t.done() for t in self.tasks))
    def cancel_one(self, data: st.DataObject) -> None:
        live = [t for t in self.tasks if not t.done()]
        data.draw(st.sampled_from(live)).cancel()

    @rule(steps=st.integers(1, 3))
    def step(self, steps: int) -> None:
        for _ in range(steps):
            self.loop.run_until_complete(asyncio.sleep(0))

    @rule()
    def close(self) -> None:
        self.q.close()
        self.closed = True

    @invariant()
    def nothing_invented_or_duplicated(self) -> None:
        counts = Counter(self.got)
        assert all(n == 1 for n in counts.values())
        assert set(self.got) <= set(self.put_ok) | {(f"task{i}", 0) for i in range(len(self.tasks))}
        _check_fifo(self.got)

    def teardown(self) -> None:
        try:
            for task in self.tasks:
                if not task.done() and task.get_coro().__qualname__.endswith("async_put"):
                    task.cancel()
            self.q.close()
            for _ in range(5):
                self.loop.run_until_complete(asyncio.sleep(0))
            for task in self.tasks:  # getters left get ClosedError once drained
                if not task.done():
                    self.loop.run_until_complete(asyncio.sleep(0))
            while True:
                try:
                    self.got.append(self.q.get_nowait())
                except (Empty, ClosedError):
                    break
            for _ in range(3):
                self.loop.run_until_complete(asyncio.sleep(0))
            assert all(t.done() for t in self.tasks)
            assert Counter(self.got) == Counter(self.put_ok), "lost or duplicated items"
            _check_fifo(self.got)
        finally:
            for task in self.tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()


QueueMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_queue_machine = QueueMachine.TestCase


# -- concurrent mixes ----------------------------------------------------------------------

KINDS = ("thread", "loop1", "loop2")


class _Loops:
    """Two event loops, each in its own thread."""

    def __init__(self) -> None:
        self.loops = {name: asyncio.new_event_loop() for name in ("loop1", "loop2")}
        self.threads = [
            threading.Thread(target=loop.run_forever, daemon=True) for loop in self.loops.values()
        ]
        for t in self.threads:
            t.start()

    def submit(self, name: str, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loops[name])

    def close(self) -> None:
        for loop in self.loops.values():
            loop.call_soon_threadsafe(loop.stop)
        for t in self.threads:
            t.join(10)
        for loop in self.loops.values():
            loop.close()


def _run_mix(
    producers: list[tuple[str, int]],
    consumers: list[tuple[str, float]],
    maxsize: int,
    put_timeout: float | None,
    q: Queue[tuple[str, int]] | None = None,
    before_close: Any = None,
) -> tuple[list[tuple[str, int]], dict[str, list[tuple[str, int]]]]:
    q = Queue(maxsize) if q is None else q
    loops = _Loops()
    received: dict[str, list[tuple[str, int]]] = {}
    produced: list[tuple[str, int]] = []
    lock = threading.Lock()

    def sync_produce(name: str, n: int) -> None:
        for i in range(n):
            while True:
                try:
                    q.put((name, i), timeout=put_timeout)
                    break
                except Full:
                    continue
            with lock:
                produced.append((name, i))

    async def async_produce(name: str, n: int) -> None:
        for i in range(n):
            while True:
                try:
                    await q.async_put((name, i), timeout=put_timeout)
                    break
                except Full:
                    continue
            with lock:
                produced.append((name, i))

    def sync_consume(name: str, patience: float) -> None:
        got = received.setdefault(name, [])
        while True:
            try:
                got.append(q.get(timeout=patience) if patience else q.get())
            except Empty:
                continue
            except ClosedError:
                return

    async def async_consume(name: str, patience: float) -> None:
        got = received.setdefault(name, [])
        while True:
            try:
                if patience:  # a cancellation after each short wait
                    got.append(await asyncio.wait_for(q.async_get(), patience))
                else:
                    got.append(await q.async_get())
            except TimeoutError:
                continue
            except ClosedError:
                return

    waits: list[Any] = []
    try:
        for k, (kind, patience) in enumerate(consumers):
            name = f"c{k}-{kind}"
            if kind == "thread":
                t = threading.Thread(target=sync_consume, args=(name, patience))
                t.start()
                waits.append(t)
            else:
                waits.append(loops.submit(kind, async_consume(name, patience)))
        producing: list[Any] = []
        for k, (kind, n) in enumerate(producers):
            name = f"p{k}-{kind}"
            if kind == "thread":
                t = threading.Thread(target=sync_produce, args=(name, n))
                t.start()
                producing.append(t)
            else:
                producing.append(loops.submit(kind, async_produce(name, n)))
        for p in producing:
            p.join(30) if isinstance(p, threading.Thread) else p.result(30)
        if before_close is not None:
            before_close()
        q.close()
        for w in waits:
            w.join(30) if isinstance(w, threading.Thread) else w.result(30)
    finally:
        q.close()
        loops.close()
    return produced, received


def _check(produced: list[tuple[str, int]], received: dict[str, list[tuple[str, int]]]) -> None:
    everything = [x for got in received.values() for x in got]
    assert Counter(everything) == Counter(produced), "lost or duplicated items"
    for got in received.values():
        _check_fifo(got)


mixes = st.fixed_dictionaries(
    {
        "producers": st.lists(
            st.tuples(st.sampled_from(KINDS), st.integers(0, 150)), min_size=1, max_size=4
        ),
        "consumers": st.lists(
            st.tuples(st.sampled_from(KINDS), st.sampled_from([0.0, 0.0, 0.0005, 0.002])),
            min_size=1,
            max_size=4,
        ),
        "maxsize": st.sampled_from([0, 1, 2, 8]),
        "put_timeout": st.sampled_from([None, None, 0.001]),
    }
)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(mix=mixes)
def test_threads_and_two_loops_lose_nothing(mix: dict[str, Any]) -> None:
    _check(*_run_mix(**mix))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mix=mixes)
def test_threads_and_two_loops_lose_nothing_long(mix: dict[str, Any]) -> None:
    _check(*_run_mix(**mix))


# -- with processes ------------------------------------------------------------------------


def process_produce(q: Queue[tuple[str, int]], name: str, n: int) -> None:
    for i in range(n):
        q.put((name, i))


def _run_with_processes(n_procs: int, n: int, maxsize: int) -> None:
    q: Queue[tuple[str, int]] = Queue(maxsize)
    ctx = get_context()
    procs = [ctx.Process(target=process_produce, args=(q, f"proc{k}", n)) for k in range(n_procs)]
    for p in procs:
        p.start()

    def join_processes() -> None:
        for p in procs:
            p.join(60)

    produced, received = _run_mix(
        [("loop1", n), ("thread", n)],
        [("thread", 0.0), ("loop1", 0.001), ("loop2", 0.0)],
        maxsize,
        None,
        q,
        join_processes,
    )
    expected = produced + [(f"proc{k}", i) for k in range(n_procs) for i in range(n)]
    _check(expected, received)
    assert all(p.exitcode == 0 for p in procs)


def test_processes_threads_and_loops_lose_nothing() -> None:
    _run_with_processes(2, 300, 16)


@pytest.mark.slow
def test_processes_threads_and_loops_lose_nothing_long() -> None:
    for maxsize in (0, 1, 64):
        _run_with_processes(3, 5000, maxsize)
