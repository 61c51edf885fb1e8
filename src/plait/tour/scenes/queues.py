"""Queues, Pipe and channels (seed S9, S11, S16): the seed's programs, the plait way.

* producer/consumer: the seed's consumer polls ``q.empty()`` and gives up after ten looks;
  here it iterates the queue, which ends when the producer closes it, and ``maxsize``
  makes a fast producer wait for a slow consumer (backpressure) -- no polling anywhere;
* the seed's process ``Queue`` and ``Pipe`` programs, with plait's objects, plus a queue
  handed to a worker that is already running;
* the seed's generator pair ``consumer()``/``produce()`` next to the same conversation
  between two coroutines over two plait queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import threading
import time
from collections.abc import Generator
from typing import Any, TextIO

from plait._channels import Pipe, Queue
from plait._channels._pipe import Connection
from plait._ipc.context import get_context
from plait.tour._framework import Scene, stamp

__all__ = ["SCENES"]

MAKE_S = 0.01  # the seed sleeps up to 2-3 s per bun; the tour, a few ms
EAT_S = 0.03


# -- S9: producer / consumer ---------------------------------------------------------------


def _producer_consumer() -> None:
    q: Queue[int] = Queue(maxsize=2)
    t0 = time.perf_counter()
    waited: list[float] = []

    def producer(name: str) -> None:
        for count in range(10):
            time.sleep(MAKE_S)
            before = time.perf_counter()
            q.put(count)  # waits while two buns are unread: backpressure
            waited.append(time.perf_counter() - before)
            print(f"  Producer {name} has produced {count} baozi   {stamp(t0)}")
        q.close()  # no more buns: the consumer's loop ends once it has eaten the rest
        print(f"  ok...... (producer closed the queue)   {stamp(t0)}")

    async def consumer(name: str) -> int:
        eaten = 0
        async for data in q:  # no q.empty() polling, no giving up early
            await asyncio.sleep(EAT_S)
            eaten += 1
            print(f"  Consumer {name} has eaten {data} baozi      {stamp(t0)}")
        return eaten

    p = threading.Thread(target=producer, args=("A",))
    p.start()
    eaten = asyncio.run(consumer("B"))  # a coroutine consumer, a thread producer, one queue
    p.join()
    blocked = sum(1 for w in waited if w > EAT_S / 3)
    lost = "none lost" if eaten == 10 else f"{10 - eaten} LOST"
    room = (
        f"the producer waited for room {blocked} time(s) (maxsize=2: backpressure)"
        if blocked
        else "the producer never had to wait for room (the consumer kept up)"
    )
    print(
        f"\nmeasured: {eaten} of 10 buns eaten, {lost}; {room}; the consumer never polled "
        "q.empty(): its loop ended when the producer closed the queue"
    )


# -- S11: process Queue and Pipe -------------------------------------------------------------


def square_plus_one(q: Queue[Any], n: int) -> None:
    """The seed's ``f(q, n)``: put ``n*n+1`` (and say which process and object did it)."""
    q.put((n * n + 1, os.getpid(), id(q)))


def _process_queue() -> None:
    q: Queue[Any] = Queue()
    print(f"  main process {os.getpid()}, queue id {id(q)}")
    ctx: Any = get_context()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=square_plus_one, args=(q, i)) for i in range(3)]
    for p in procs:
        p.start()
    got = [q.get(timeout=30) for _ in range(3)]
    for value, pid, ident in sorted(got):
        print(f"  {value}   (put by son process {pid}, its queue id {ident})")
    for p in procs:
        p.join()
    pids = {pid for _, pid, _ in got}
    print(f"  {len(got)} results from {len(pids)} different child process(es)   {stamp(t0)}")
    differs = {ident for _, _, ident in got} != {id(q)}
    print(
        "  (id() is an object's address inside its own process. "
        + ("The children's ids differ from the main process's: " if differs else "")
        + "each process holds its own copy of the queue object, and every copy leads to "
        "the one queue, so the main process got every result.)"
    )

    print("\na queue handed to a worker that is already running:")
    inbox: Queue[Any] = Queue()
    worker = ctx.Process(target=_serve_one, args=(inbox,))
    worker.start()
    replies: Queue[Any] = Queue()  # created after the worker started
    inbox.put(replies)
    inbox.put(7)
    print(f"  worker replied {replies.get(timeout=30)!r}   {stamp(t0)}")
    worker.join()


def _serve_one(inbox: Queue[Any]) -> None:
    replies = inbox.get()
    n = inbox.get()
    replies.put(f"{n} squared is {n * n}, from pid {os.getpid()}")


def pipe_child(conn: Connection) -> None:
    """The seed's ``f(conn)``: send a message, wait for the answer, report it, close."""
    conn.send([12, {"name": "yuan"}, "hello"])
    response = conn.recv()
    conn.send(f"child received: {response}")
    conn.close()


def _process_pipe() -> None:
    parent_conn, child_conn = Pipe()
    print(f"  p_ID: {id(parent_conn)}  q_ID1: {id(child_conn)}")
    print(
        "  (the seed's labels: id() of the parent's end and of the child's end of the pipe "
        "-- two different objects, one for each side)"
    )
    t0 = time.perf_counter()
    ctx: Any = get_context()
    p = ctx.Process(target=pipe_child, args=(child_conn,))
    p.start()
    child_conn.close()
    print(f"  {parent_conn.recv()}   {stamp(t0)}")
    parent_conn.send("儿子你好!")  # the seed's greeting: "Hello, son!"
    print(f"  {parent_conn.recv()}   {stamp(t0)}   (儿子你好! is Chinese for 'Hello, son!')")
    p.join()

    print("\nthe same Pipe between a thread and a coroutine (async_send / async_recv):")
    a, b = Pipe()

    def thread_side() -> None:
        a.send([12, {"name": "yuan"}, "hello"])
        print(f"  thread got back: {a.recv()}")

    async def coroutine_side() -> None:
        msg = await b.async_recv()
        await b.async_send(f"coroutine received {msg}")

    t = threading.Thread(target=thread_side)
    t.start()
    asyncio.run(coroutine_side())
    t.join()
    for end in (a, b, parent_conn):
        end.close()


# -- S16: generator coroutines and channels ------------------------------------------------


def consumer() -> Generator[str, int, None]:
    """The seed's generator consumer, as written (its sleep shortened)."""
    r = ""
    while True:
        n = yield r
        if not n:
            return
        print(f"  [CONSUMER] <<- Consuming {n}...")
        time.sleep(EAT_S)
        r = "200 OK"


def produce(c: Generator[str, int, None]) -> None:
    """The seed's producer: drives the generator with ``send``."""
    next(c)
    n = 0
    while n < 5:
        n = n + 1
        print(f"  [PRODUCER] ->> Producing {n}...")
        cr = c.send(n)
        print(f"  [PRODUCER] Consumer return: {cr}")
    c.close()


async def channel_consumer(requests: Queue[int], replies: Queue[str]) -> None:
    """The same consumer as a coroutine strand: it reads requests until they are closed."""
    async for n in requests:
        print(f"  [CONSUMER] <<- Consuming {n}...")
        await asyncio.sleep(EAT_S)  # waiting no longer blocks everything else
        await replies.async_put("200 OK")


async def channel_producer(requests: Queue[int], replies: Queue[str]) -> None:
    n = 0
    while n < 5:
        n = n + 1
        print(f"  [PRODUCER] ->> Producing {n}...")
        await requests.async_put(n)
        cr = await replies.async_get()
        print(f"  [PRODUCER] Consumer return: {cr}")
    requests.close()


class _Tee(io.TextIOBase):
    """Write to the real stdout and keep the lines, so two runs can be compared."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.text = io.StringIO()

    def write(self, s: str) -> int:
        self.text.write(s)
        return self.out.write(s)

    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.getvalue().splitlines() if line.strip()]


def _generators() -> None:
    print("the seed's generator pair (send() hands control back and forth):")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(_Tee(sys.stdout)) as gen_out:
        produce(consumer())
    gen_time = time.perf_counter() - t0

    print("\nthe same conversation between two coroutines over two plait queues:")

    async def main() -> None:
        requests: Queue[int] = Queue(1)
        replies: Queue[str] = Queue(1)
        await asyncio.gather(
            channel_consumer(requests, replies), channel_producer(requests, replies)
        )

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(_Tee(sys.stdout)) as chan_out:
        asyncio.run(main())
    chan_time = time.perf_counter() - t0
    gen_lines, chan_lines = gen_out.lines(), chan_out.lines()
    if gen_lines == chan_lines:
        order = f"the same {len(gen_lines)} lines in the same order"
    else:
        order = (
            f"a different order ({len(gen_lines)} lines from the generators, "
            f"{len(chan_lines)} from the channels)"
        )
    print(
        f"\nmeasured: generators {gen_time:.2f} s, channels {chan_time:.2f} s -- {order}. "
        "The channel version also works between threads and processes, and the "
        "consumer's wait does not block the loop."
    )


SCENES: list[Scene] = [
    Scene(
        name="queues-producer-consumer",
        title="Producer and consumer: close instead of polling, backpressure by maxsize",
        shows="a thread producer and a coroutine consumer on one plait.Queue(maxsize=2)",
        run=_producer_consumer,
        seed="S9",
    ),
    Scene(
        name="queues-process-queue",
        title="One queue across processes, also handed to a running worker",
        shows="the seed's process Queue program with plait.Queue",
        run=_process_queue,
        seed="S11",
    ),
    Scene(
        name="queues-pipe",
        title="Pipe between processes, and between a thread and a coroutine",
        shows="the seed's Pipe program with plait.Pipe, then the same ends from two strand kinds",
        run=_process_pipe,
        seed="S11",
    ),
    Scene(
        name="queues-generators",
        title="Generator coroutines next to coroutines over channels",
        shows="the seed's consumer()/produce() pair, then the same over two plait queues",
        run=_generators,
        seed="S16",
    ),
]
