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
import textwrap
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from plait.pool import Pool
from plait.tour._framework import Scene, stamp
from plait.tour._verdict import (
    TOLERANCE,
    busy_machine,
    compare,
    describe_ratio,
    load_average,
    usable_cores,
)

__all__ = ["SCENES"]

NAP = 0.2
REQUESTS = 10_000
CONCURRENCY = 50
CONNECTIONS = 16  # kept open per worker process and shared by its coroutines
ANSWER = (b"0123456789abcdef" * 96)[:1500] + b"\n"


def foo(args: int) -> tuple[int, float]:
    """The seed's task: sleep, then print its argument (and say which worker, and when)."""
    began = time.time()  # the wall clock: the same in every process
    time.sleep(NAP)
    print(f"  {args}  (pid {os.getpid()})", flush=True)
    return os.getpid(), began


def seed_conclusion(tasks: list[tuple[int, float]], t0: float, elapsed: float) -> str:
    """What the ten tasks' workers and start times (wall clock; ``t0`` when the pool was
    created, ``elapsed`` until ``join()`` returned) show, in words."""
    first: dict[int, float] = {}
    per_worker: dict[int, int] = {}
    for pid, began in tasks:
        per_worker[pid] = per_worker.get(pid, 0) + 1
        first[pid] = min(first.get(pid, began), began)
    waves = max(per_worker.values())
    last_end = max(began for _, began in tasks) + NAP - t0
    return (
        f"{len(per_worker)} worker(s) took the {len(tasks)} tasks, at most {waves} each: "
        f"{waves} wave(s) of {NAP} s. The workers began their first task between "
        f"{min(first.values()) - t0:.2f} s and {max(first.values()) - t0:.2f} s (start-up), "
        f"the last task ended at {last_end:.2f} s and close()/join() took "
        f"{max(elapsed - last_end, 0.0):.2f} s more; one worker alone would need "
        f"{len(tasks) * NAP:.0f} s of naps."
    )


def _seed() -> None:
    print(f"p = Pool(5); 10 x p.apply_async(func=foo, args=(i,)); close(); join()  [nap {NAP} s]")
    t0, wall0 = time.perf_counter(), time.time()
    p = Pool(5)
    pending = [p.apply_async(func=foo, args=(i,)) for i in range(10)]
    p.close()
    p.join()
    elapsed = time.perf_counter() - t0
    tasks = [r.get(timeout=30) for r in pending]
    print(f"\nmeasured: 10 tasks of {NAP} s on Pool(5) took {elapsed:.2f} s ({stamp(t0)})")
    print(textwrap.fill(seed_conclusion(tasks, wall0, elapsed), width=92))


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


async def request(port: int, n: int) -> tuple[int, int, float]:
    """One request: borrow a connection, send ``n``, read the answer, digest it.

    Returns the digest, the worker's pid and its CPU time so far, so that the scene can
    tell how many cores the workers kept busy."""
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
    return _digest(answer), os.getpid(), time.process_time()


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


@dataclass(frozen=True)
class RequestsRun:
    """One timed run of the requests: how long, how many the server answered, and how many
    cores this process (the server's thread and the pool's plumbing) kept busy."""

    processes: int
    startup: float  # seconds to start the pool and have every worker answer once
    wall: float  # seconds for the requests, on the started pool
    served: int
    here_busy: float
    workers_busy: float


def _run_requests(server: _Server, processes: int) -> RequestsRun:
    t0 = time.perf_counter()
    with Pool(processes, concurrency=CONCURRENCY) as pool:
        pool.map(time.sleep, [0.05] * processes, chunksize=1)  # every worker up and running
        startup = time.perf_counter() - t0
        served_before = server.served
        t0, c0 = time.perf_counter(), time.process_time()
        answers = cast(  # a coroutine function's results, not coroutines
            "list[tuple[int, int, float]]",
            # several iterables: Executor.map's iterator, read here, inside the timing
            list(pool.map(request, [server.port] * REQUESTS, range(REQUESTS), chunksize=250)),
        )
        wall = time.perf_counter() - t0
        here = (time.process_time() - c0) / wall
    digests = {digest for digest, _, _ in answers}
    if len(answers) != REQUESTS or len(digests) != 1:
        raise RuntimeError(f"expected {REQUESTS} equal digests, got {len(digests)} kinds")
    cpu: dict[int, list[float]] = {}
    for _, pid, used in answers:
        cpu.setdefault(pid, []).append(used)
    workers = sum(max(times) - min(times) for times in cpu.values()) / wall
    return RequestsRun(processes, startup, wall, server.served - served_before, here, workers)


BUSY_WORKER = 0.7  # a worker that kept less of a core busy was mostly waiting


def coroutines_conclusions(
    one: RequestsRun, many: RequestsRun, cores: int, load: float | None
) -> list[str]:
    """What the two runs show, in words; the text follows the numbers."""
    ratio = one.wall / many.wall
    n = many.processes
    load_text = f"load average {load:.1f}" if load is not None else "no load average here"
    busy = (
        f"one worker kept {one.workers_busy:.2f} cores busy, {n} workers kept "
        f"{many.workers_busy:.2f}"
    )
    waited = one.workers_busy < BUSY_WORKER
    if compare(ratio) == "faster":
        lines = [f"{n} processes were {describe_ratio(ratio, 'one')}; {busy}."]
        if not waited:
            lines.append(
                f"One event loop ran {CONCURRENCY} coroutines at a time on one core, and that "
                "core was the limit; more processes add cores."
            )
        else:
            lines.append(
                "Not for more cores, though: the single worker's coroutines mostly waited "
                f"(on the server and on the operating system's scheduler, {load_text}); "
                f"{n} workers simply had {n}x as many requests in flight."
            )
        if ratio > n * (1 + TOLERANCE):
            lines.append(
                f"(more than {n} cores can give: the single worker was held back, so the "
                "ratio is skewed.)"
            )
        elif ratio < 0.8 * n and not waited:
            lines.append(
                f"(below {n}x: the server runs in this process and shares the cores; "
                f"it kept {many.here_busy:.2f} cores busy.)"
            )
        return lines
    causes = [busy]
    if many.here_busy >= 0.8:
        causes.append(
            f"the server, one thread in this process, kept {many.here_busy:.2f} cores "
            "busy: it sets the pace, not the workers"
        )
    if waited:
        causes.append(
            "the coroutines mostly waited (on the server and on the operating system's "
            "scheduler) instead of computing"
        )
    if cores <= n:
        causes.append(f"{cores} usable cores for {n} worker processes and the server")
    if busy_machine(load, cores):
        causes.append(f"other programs compete for the cores ({load_text})")
    if len(causes) == 1:
        causes.append("no cause shows in these numbers; rerun on a quiet machine")
    return [
        f"on this machine {n} processes were not faster than one ({ratio:.2f}x):",
        "  " + "; ".join(causes) + ".",
    ]


def _coroutines() -> None:
    cores = max(2, min(usable_cores(), 8))
    t0 = time.thread_time()
    for _ in range(200):
        _digest(ANSWER)
    digest_ms = (time.thread_time() - t0) / 200 * 1e3
    print(
        f"{REQUESTS:,} coroutine requests to a local asyncio server (127.0.0.1), "
        f"{CONCURRENCY} at once per worker process, each with {digest_ms:.2f} ms of CPU work "
        "(a pure-Python checksum of the answer)"
    )
    with _Server() as server:
        runs = [_run_requests(server, 1), _run_requests(server, cores)]
    print("  (each pool started first; its start-up is not in the time)")
    print("  workers  time    served  start-up  cores busy: workers  server (this process)")
    for run in runs:
        print(
            f"  {run.processes:>7}  {run.wall:4.2f} s  {run.served:>6,}  {run.startup:6.2f} s"
            f"  {run.workers_busy:18.2f}  {run.here_busy:7.2f}"
        )
    print()
    for line in coroutines_conclusions(runs[0], runs[1], usable_cores(), load_average()):
        print(textwrap.fill(line, width=92, subsequent_indent="  "))


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
