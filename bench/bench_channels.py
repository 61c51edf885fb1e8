"""Channels (issue 4, point 7): plait's queues against asyncio, queue, janus/culsans,
multiprocessing and faster-fifo, all in the same run.

    python bench/bench_channels.py [--quick]

Every figure is messages per second (median of several runs); ratios are against the peer
named as baseline in the same run.

* coroutine -> coroutine stream on one loop (unbounded, and maxsize=16); trio's and anyio's
  memory channels and gevent's queue (between greenlets) as peers of the unbounded one;
* ping-pong between two coroutines over two queues on one loop (asyncio's, and uvloop's);
* thread -> thread stream (maxsize=1000);
* thread -> coroutine stream (maxsize=1000): janus, culsans;
* process -> parent, small ints: multiprocessing.Queue, faster-fifo;
* process -> parent, 1 MiB ``bytes`` buffers: faster-fifo, multiprocessing.Queue.
"""

from __future__ import annotations

import asyncio
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from _harness import Bench
from plait._channels import Queue
from plait._ipc.context import get_context

# -- in-process --------------------------------------------------------------------------


def coro_stream(make: Callable[[], Any], plait_api: bool, n: int) -> float:
    async def main() -> float:
        q = make()
        put = q.async_put if plait_api else q.put
        get = q.async_get if plait_api else q.get

        async def produce() -> None:
            for i in range(n):
                await put(i)

        async def consume() -> None:
            for _ in range(n):
                await get()

        t0 = time.perf_counter()
        await asyncio.gather(consume(), produce())
        return n / (time.perf_counter() - t0)

    return asyncio.run(main())


def trio_stream(n: int) -> float:
    """trio's memory channel (unbounded), the same stream on trio's own loop."""
    import math

    import trio

    async def main() -> float:
        send, receive = trio.open_memory_channel[int](math.inf)

        async def produce() -> None:
            for i in range(n):
                await send.send(i)

        async def consume() -> None:
            for _ in range(n):
                await receive.receive()

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            nursery.start_soon(produce)
        return n / (time.perf_counter() - t0)

    return trio.run(main)


def anyio_stream(n: int) -> float:
    """anyio's memory object stream (unbounded) on asyncio."""
    import math

    import anyio

    async def main() -> float:
        send, receive = anyio.create_memory_object_stream[int](math.inf)

        async def produce() -> None:
            for i in range(n):
                await send.send(i)

        async def consume() -> None:
            for _ in range(n):
                await receive.receive()

        t0 = time.perf_counter()
        async with send, receive, anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
        return n / (time.perf_counter() - t0)

    return anyio.run(main)


def gevent_stream(n: int) -> float:
    """gevent's queue between two greenlets (no monkey-patching needed)."""
    import gevent
    import gevent.queue

    q: Any = gevent.queue.Queue()

    def produce() -> None:
        for i in range(n):
            q.put(i)

    def consume() -> None:
        for _ in range(n):
            q.get()

    t0 = time.perf_counter()
    gevent.joinall([gevent.spawn(consume), gevent.spawn(produce)])
    return n / (time.perf_counter() - t0)


def _optional(fns: dict[str, Callable[[], float]], **peers: Callable[[], float]) -> None:
    """Add the peers whose library is installed (``pip install -e '.[bench]'`` has them all)."""
    import importlib.util

    for name, fn in peers.items():
        if importlib.util.find_spec(name.split()[0].split(".")[0]) is not None:
            fns[name] = fn


def ping_pong(
    make: Callable[[], Any], plait_api: bool, n: int, loop_factory: Callable[[], Any] | None = None
) -> float:
    async def main() -> float:
        a, b = make(), make()
        aput, aget = (a.async_put, a.async_get) if plait_api else (a.put, a.get)
        bput, bget = (b.async_put, b.async_get) if plait_api else (b.put, b.get)

        async def left() -> None:
            for i in range(n):
                await aput(i)
                await bget()

        async def right() -> None:
            for _ in range(n):
                await bput(await aget())

        t0 = time.perf_counter()
        await asyncio.gather(left(), right())
        return 2 * n / (time.perf_counter() - t0)  # messages, both ways

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def thread_stream(q: Any, n: int) -> float:
    def produce() -> None:
        for i in range(n):
            q.put(i)

    t = threading.Thread(target=produce)
    t0 = time.perf_counter()
    t.start()
    get = q.get
    for _ in range(n):
        get()
    t.join()
    return n / (time.perf_counter() - t0)


def thread_to_coro(impl: str, n: int) -> float:
    async def main() -> float:
        if impl == "janus":
            import janus

            jq: Any = janus.Queue(1000)
            put, aget = jq.sync_q.put, jq.async_q.get
        elif impl == "culsans":
            import culsans

            jq = culsans.Queue(1000)
            put, aget = jq.sync_q.put, jq.async_q.get
        else:
            jq = Queue(1000)
            put, aget = jq.put, jq.async_get

        def produce() -> None:
            for i in range(n):
                put(i)

        t0 = time.perf_counter()
        t = threading.Thread(target=produce)
        t.start()
        for _ in range(n):
            await aget()
        elapsed = time.perf_counter() - t0
        await asyncio.to_thread(t.join)
        if impl in ("janus", "culsans"):
            jq.close()
            await jq.wait_closed()
        return n / elapsed

    return asyncio.run(main())


# -- across processes --------------------------------------------------------------------


def _child_put(q: Any, n: int, size: int) -> None:
    item: Any = b"x" * size if size else 0
    for i in range(n):
        q.put(item if size else i)
    q.put(None)


class _FF:
    """faster-fifo with a blocking ``get`` like the others."""

    def __init__(self) -> None:
        import faster_fifo

        self.q = faster_fifo.Queue(max_size_bytes=64 * 1024 * 1024)

    def put(self, item: Any) -> None:
        self.q.put(item, timeout=60)

    def get(self) -> Any:
        return self.q.get(timeout=60)


def xproc_stream(impl: str, n: int, size: int) -> float:
    ctx = get_context()
    if impl == "plait":
        q: Any = Queue(1000)
    elif impl == "multiprocessing.Queue":
        q = ctx.Queue(1000)
    else:
        q = _FF()
    p = ctx.Process(target=_child_put, args=(q, n, size))
    p.start()
    first = q.get()  # the child is up and streaming: time from here
    t0 = time.perf_counter()
    count = 0
    get = q.get
    while get() is not None:
        count += 1
    elapsed = time.perf_counter() - t0
    p.join()
    del first
    return count / elapsed


def interleaved(fns: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """Rates of each of ``fns``, their runs taken in turn (a, b, c, a, b, c, ...): on this
    shared machine a change of load then lands on every implementation alike."""
    for fn in fns.values():
        fn()  # warm-up
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            runs[name].append(fn())
    return runs


def main() -> None:
    bench = Bench.from_argv("channels")
    r = bench.scale(7, 3)
    n = bench.scale(200_000, 20_000)

    def case(
        name: str,
        base: str,
        fns: dict[str, Callable[[], float]],
        target: str | None = None,
        target_ratio: float | None = None,
    ) -> None:
        runs = interleaved(fns, r)
        for impl, values in runs.items():
            extra: dict[str, Any] = {}
            if impl == "plait.Queue":
                # the ratio of each round's pair, measured back to back: steadier than the
                # ratio of two medians when the machine's load moves
                paired = [p / b for p, b in zip(values, runs[base], strict=True)]
                extra = {
                    "target": target,
                    "target_ratio": target_ratio,
                    "note": f"paired ratios: median {statistics.median(paired):.2f}x, "
                    f"{min(paired):.2f}-{max(paired):.2f}x",
                }
            bench.record(
                name,
                impl,
                statistics.median(values),
                "msg/s",
                baseline=base,
                samples=values,
                **extra,
            )

    streams: dict[str, Callable[[], float]] = {
        "asyncio.Queue": lambda: coro_stream(asyncio.Queue, False, n),
        "plait.Queue": lambda: coro_stream(Queue, True, n),
    }
    _optional(
        streams,
        **{
            "trio memory channel": lambda: trio_stream(n),
            "anyio memory stream": lambda: anyio_stream(n),
            "gevent.queue.Queue": lambda: gevent_stream(n),
        },
    )
    case(
        "coroutine->coroutine stream, unbounded",
        "asyncio.Queue",
        streams,
        ">= 2x asyncio.Queue",
        2.0,
    )
    case(
        "coroutine->coroutine stream, maxsize=16",
        "asyncio.Queue",
        {
            "asyncio.Queue": lambda: coro_stream(lambda: asyncio.Queue(16), False, n),
            "plait.Queue": lambda: coro_stream(lambda: Queue(16), True, n),
        },
    )  # (no target: every 16 items both sides park and switch, as with asyncio.Queue)
    case(
        "ping-pong, one loop",
        "asyncio.Queue",
        {
            "asyncio.Queue": lambda: ping_pong(asyncio.Queue, False, n // 4),
            "plait.Queue": lambda: ping_pong(Queue, True, n // 4),
        },
        ">= 1.2x asyncio.Queue",
        1.2,
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the bench extra installs it
        uvloop = None
    if uvloop is not None:
        case(
            "ping-pong, one uvloop loop",
            "asyncio.Queue",
            {
                "asyncio.Queue": lambda: ping_pong(
                    asyncio.Queue, False, n // 4, uvloop.new_event_loop
                ),
                "plait.Queue": lambda: ping_pong(Queue, True, n // 4, uvloop.new_event_loop),
            },
        )
    case(
        "thread->thread stream, maxsize=1000",
        "queue.Queue",
        {
            "queue.Queue": lambda: thread_stream(queue.Queue(1000), n),
            "plait.Queue": lambda: thread_stream(Queue(1000), n),
        },
        ">= 1x queue.Queue",
        1.0,
    )
    case(
        "thread->coroutine stream, maxsize=1000",
        "janus",
        {
            "janus": lambda: thread_to_coro("janus", n // 2),
            "culsans": lambda: thread_to_coro("culsans", n // 2),
            "plait.Queue": lambda: thread_to_coro("plait", n // 2),
        },
        ">= 1.5x janus",
        1.5,
    )
    case(
        "process->parent, small ints",
        "multiprocessing.Queue",
        {
            "multiprocessing.Queue": lambda: xproc_stream("multiprocessing.Queue", n, 0),
            "faster-fifo": lambda: xproc_stream("faster-fifo", n, 0),
            "plait.Queue": lambda: xproc_stream("plait", n, 0),
        },
        ">= 3x multiprocessing.Queue",
        3.0,
    )
    m = bench.scale(1000, 100)
    case(
        "process->parent, 1 MiB bytes",
        "faster-fifo",
        {
            "faster-fifo": lambda: xproc_stream("faster-fifo", m, 1 << 20),
            "multiprocessing.Queue": lambda: xproc_stream("multiprocessing.Queue", m, 1 << 20),
            "plait.Queue": lambda: xproc_stream("plait", m, 1 << 20),
        },
        ">= 1x faster-fifo",
        1.0,
    )
    bench.note(
        "msg/s, median of runs; the implementations of a case run in turn, round after round "
        "(so a change of machine load hits them alike); plait's row notes the median and "
        "range of the per-round ratios (plait / baseline, same round). In-process cases on "
        "asyncio's default loop. Cross-process: "
        "a forkserver child puts, the parent gets; 1 MiB items are `bytes` (plait: through "
        "a shared-memory segment per item)."
    )
    bench.save()


if __name__ == "__main__":
    main()
