"""Pools (seed S14, S19): the seed's ``Pool(5)``, and coroutines spread over processes.

* ``pool-seed``: the seed's program (``Pool(5)``, ten ``apply_async(func=foo, args=(i,))``,
  ``close()``, ``join()``) with 0.2 s naps instead of 1 s: two waves of five.
* ``pool-coroutines``: the seed says one CPU runs ten thousand coroutines, but coroutines
  need processes to use several cores. 10,000 coroutine "requests" go to a local asyncio
  server on 127.0.0.1 (started here, in a thread of this process); each request also does a
  little CPU work on its answer. One worker process running them all (``concurrency=50``
  coroutines at once) is timed against one worker per core, each with its own event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from plait.pool import Pool
from plait.tour._framework import Scene, stamp

__all__ = ["SCENES"]

NAP = 0.2
REQUESTS = 10_000
CONCURRENCY = 50
CONNECTIONS = 16  # kept open per worker process and shared by its coroutines
ANSWER = (b"0123456789abcdef" * 96)[:1500] + b"\n"


def foo(args: int) -> None:
    """The seed's task: sleep, then print its argument."""
    time.sleep(NAP)
    print(f"  {args}  (pid {os.getpid()})", flush=True)


def _seed() -> None:
    print(f"p = Pool(5); 10 x p.apply_async(func=foo, args=(i,)); close(); join()  [nap {NAP} s]")
    t0 = time.perf_counter()
    p = Pool(5)
    for i in range(10):
        p.apply_async(func=foo, args=(i,))
    p.close()
    p.join()
    elapsed = time.perf_counter() - t0
    print(f"\nmeasured: 10 tasks of {NAP} s on 5 workers took {elapsed:.2f} s ({stamp(t0)})")
    print(f"(two waves of five: about {2 * NAP:.1f} s plus start-up; one worker: {10 * NAP:.0f} s)")


# -- processes x coroutines ---------------------------------------------------------------
_connections: dict[int, asyncio.Task[asyncio.Queue[Any]]] = {}  # per worker process


async def _open(port: int) -> asyncio.Queue[Any]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        queue.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    return queue


def _digest(answer: bytes) -> int:
    """The CPU part of a request: a checksum in pure Python (holds the GIL ~0.1 ms)."""
    total = 0
    for byte in answer:
        total = (total * 31 + byte) & 0xFFFFFF
    return total


async def request(port: int, n: int) -> int:
    """One request: borrow a connection, send ``n``, read the answer, digest it."""
    if port not in _connections:
        _connections[port] = asyncio.ensure_future(_open(port))
    pool = await _connections[port]
    reader, writer = await pool.get()
    try:
        writer.write(b"%d\n" % n)
        await writer.drain()
        answer = await reader.readline()
    finally:
        pool.put_nowait((reader, writer))
    return _digest(answer)


class _Server:
    """An asyncio line server on 127.0.0.1 in its own thread: one answer per line."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.served = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                writer.write(ANSWER)
                self.served += 1
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    def __enter__(self) -> _Server:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _run_requests(server: _Server, processes: int) -> float:
    t0 = time.perf_counter()
    with Pool(processes, concurrency=CONCURRENCY) as pool:
        # several iterables: Executor.map, an iterator (read it inside the with block)
        digests = list(pool.map(request, [server.port] * REQUESTS, range(REQUESTS), chunksize=250))
    elapsed = time.perf_counter() - t0
    if len(digests) != REQUESTS or len(set(digests)) != 1:
        raise RuntimeError(f"expected {REQUESTS} equal digests, got {len(set(digests))} kinds")
    return elapsed


def _coroutines() -> None:
    cores = max(2, min(len(os.sched_getaffinity(0)), 8))
    print(
        f"{REQUESTS:,} coroutine requests to a local asyncio server (127.0.0.1), "
        f"{CONCURRENCY} at once per worker process, each with ~0.1 ms of CPU work"
    )
    with _Server() as server:
        one = _run_requests(server, 1)
        print(f"  1 process  x {CONCURRENCY} coroutines: {one:.2f} s")
        many = _run_requests(server, cores)
        print(f"  {cores} processes x {CONCURRENCY} coroutines: {many:.2f} s")
    print(f"\nmeasured: served {server.served:,} requests; {cores} processes -> {one / many:.2f}x")
    print("(one event loop runs thousands of coroutines on one core; processes add cores.")
    print(" The server shares this machine's cores, so the gain stays below the core count.)")


SCENES: list[Scene] = [
    Scene(
        name="pool-seed",
        title="Pool(5) with apply_async, close() and join()",
        shows="five workers take ten tasks in two waves; join() waits for all of them",
        run=_seed,
        seed="S14",
    ),
    Scene(
        name="pool-coroutines",
        title="10,000 coroutine requests: one process against one per core",
        shows="coroutines inside pool workers (concurrency= per worker) use several cores",
        run=_coroutines,
        seed="S19",
    ),
]
