"""Pipe: multiprocessing.Pipe's behaviour from threads, coroutines and processes."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from plait._channels import Connection, Pipe
from plait._errors import SerializationError
from plait._ipc.context import get_context


def echo_child(conn: Connection) -> None:
    while True:
        try:
            obj = conn.recv()
        except EOFError:
            return
        conn.send(("echo", obj))


def late_child(control: Connection) -> None:
    conn = control.recv()  # a pipe end that arrives after start
    conn.send("hello from a running worker")
    conn.close()


def test_send_recv_poll_like_multiprocessing() -> None:
    a, b = Pipe()
    assert not a.poll()
    a.send({"x": 1})
    assert b.poll(1)
    assert b.recv() == {"x": 1}
    b.send_bytes(b"abc")
    assert a.recv_bytes() == b"abc"
    a.close()
    with pytest.raises(EOFError):
        b.recv()
    b.close()
    assert a.closed and b.closed


def test_simplex_pipe() -> None:
    r, w = Pipe(duplex=False)
    assert r.readable and not r.writable and w.writable and not w.readable
    w.send(1)
    assert r.recv() == 1
    r.close()
    w.close()


def test_unpicklable_raises_at_send() -> None:
    a, b = Pipe()
    with pytest.raises(SerializationError):
        a.send(threading.Lock())
    a.send("still fine")
    assert b.recv() == "still fine"
    a.close()
    b.close()


def test_thread_to_coroutine_and_back() -> None:
    a, b = Pipe()

    def thread_side() -> None:
        for i in range(200):
            a.send(i)
        assert [a.recv() for _ in range(200)] == list(range(200))

    async def coroutine_side() -> None:
        got = [await b.async_recv() for _ in range(200)]
        for x in got:
            await b.async_send(x)
        assert not await b.async_poll(0.01)

    t = threading.Thread(target=thread_side)
    t.start()
    asyncio.run(coroutine_side())
    t.join()
    a.close()
    b.close()


async def test_async_big_message_does_not_block_the_loop() -> None:
    a, b = Pipe()
    payload = b"x" * (4 * 1024 * 1024)
    sender = asyncio.ensure_future(a.async_send_bytes(payload))
    got = await b.async_recv_bytes()
    await sender
    assert got == payload
    a.close()
    b.close()


def _run(target: Any, *args: Any) -> Any:
    p = get_context().Process(target=target, args=args)
    p.start()
    return p


def test_process_at_spawn() -> None:
    a, b = Pipe()
    p = _run(echo_child, b)
    b.close()
    for i in range(50):
        a.send(i)
    assert [a.recv() for _ in range(50)] == [("echo", i) for i in range(50)]
    a.close()
    p.join(10)
    assert p.exitcode == 0


def test_pipe_end_passed_to_a_running_process() -> None:
    control_parent, control_child = Pipe()
    p = _run(late_child, control_child)
    control_child.close()
    mine, theirs = Pipe()
    control_parent.send(theirs)  # after the worker started
    theirs.close()
    assert mine.recv() == "hello from a running worker"
    p.join(10)
    assert p.exitcode == 0
    control_parent.close()
    mine.close()


async def test_coroutine_talks_to_process() -> None:
    a, b = Pipe()
    p = _run(echo_child, b)
    b.close()
    await a.async_send("ping")
    assert await a.async_recv() == ("echo", "ping")
    a.close()
    await asyncio.to_thread(p.join, 10)
    assert p.exitcode == 0


def test_statistics() -> None:
    a, b = Pipe()
    assert not b.statistics().message_waiting
    a.send(1)
    s = b.statistics()
    assert s.message_waiting and s.readable and s.writable and not s.closed
    a.close()
    b.close()
    assert b.statistics().closed
