"""Pipe: multiprocessing.Pipe's behaviour from threads, coroutines and processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import plait
from plait._channels import Connection, Pipe
from plait._errors import SerializationError
from plait._ipc.context import get_context
from plait.testing import async_wait_parked


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


def stdlib_ends_child(control: Connection) -> None:
    conn = control.recv()  # a multiprocessing Connection that arrives after start
    conn.send("hello through a multiprocessing connection")
    conn.close()
    sock = control.recv()  # a socket that arrives after start
    sock.sendall(b"hello through a socket")
    sock.close()
    control.close()


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


def test_mp_connection_and_socket_sent_to_a_running_process_arrive_usable() -> None:
    """They cross with multiprocessing's reducers (a duplicate of the handle), not as a
    bare descriptor number (closed, or another file, in the receiver)."""
    control_parent, control_child = Pipe()
    p = _run(stdlib_ends_child, control_child)
    control_child.close()
    mine, theirs = multiprocessing.Pipe()
    mine_sock, their_sock = socket.socketpair()
    try:
        control_parent.send(theirs)
        theirs.close()
        assert mine.poll(30)
        assert mine.recv() == "hello through a multiprocessing connection"
        control_parent.send(their_sock)
        their_sock.close()
        mine_sock.settimeout(30)
        got = b""
        while chunk := mine_sock.recv(100):
            got += chunk
        assert got == b"hello through a socket"
        p.join(30)
        assert p.exitcode == 0
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)
        for end in (control_parent, mine, mine_sock):
            end.close()


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


# -- waits that end (issue 11 points 3 and 4, issue 18 point 4) --------------------------------


def test_recv_takes_a_timeout() -> None:
    a, b = Pipe()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        b.recv(timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 5
    a.send("late")
    assert b.recv(timeout=5) == "late"
    with pytest.raises(TypeError):
        b.recv(timeout="1")  # type: ignore[arg-type]
    a.close()
    b.close()


def test_a_thread_blocked_in_recv_sees_move_on_after_and_tg_cancel() -> None:
    a, b = Pipe()
    t0 = time.monotonic()
    with plait.move_on_after(0.2) as scope:
        b.recv()
    assert scope.cancelled_caught and time.monotonic() - t0 < 5
    started = threading.Event()

    def blocked() -> None:
        started.set()
        b.recv()

    t0 = time.monotonic()
    with plait.TaskGroup() as tg:
        tg.spawn(blocked, on="thread")
        assert started.wait(5)
        tg.cancel()
    assert time.monotonic() - t0 < 5
    a.send("still in order")
    assert b.recv(timeout=5) == "still in order"
    a.close()
    b.close()


def _header(n: int) -> bytes:
    return struct.pack("!i", n)


async def test_async_recv_never_blocks_the_loop_on_a_partly_written_message() -> None:
    a, b = Pipe()
    message = b"m" * 1000
    os.write(a.fileno(), _header(len(message)) + message[:10])  # and then nothing, for now
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick = asyncio.create_task(ticker())
    recv = asyncio.create_task(b.async_recv_bytes())
    await asyncio.sleep(0.3)
    assert not recv.done()
    assert ticks >= 5  # the loop went on while the message was incomplete
    os.write(a.fileno(), message[10:])
    assert await asyncio.wait_for(recv, 5) == message
    tick.cancel()
    a.close()
    b.close()


async def test_a_reader_cancelled_mid_message_leaves_it_whole_for_the_next() -> None:
    a, b = Pipe()
    first = pickle.dumps(("first", b"z" * 5000))
    os.write(a.fileno(), _header(len(first)) + first[:100])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.async_recv(), 0.2)
    os.write(a.fileno(), first[100:])
    a.send("second")
    assert await asyncio.wait_for(b.async_recv(), 5) == ("first", b"z" * 5000)
    assert b.recv(timeout=5) == "second"  # and a thread-side reader continues the stream
    a.close()
    b.close()


def test_a_thread_timed_out_mid_message_leaves_it_whole_for_the_next() -> None:
    a, b = Pipe()
    first = pickle.dumps(list(range(1000)))
    os.write(a.fileno(), _header(len(first)) + first[:7])
    with pytest.raises(TimeoutError):
        b.recv(timeout=0.2)
    os.write(a.fileno(), first[7:])
    assert b.recv(timeout=5) == list(range(1000))
    a.close()
    b.close()


async def test_a_cancelled_large_send_that_began_is_delivered_and_reported_sent() -> None:
    a, b = Pipe()
    payload = b"p" * (4 * 1024 * 1024)  # far more than the pipe holds: the send blocks
    sent: list[bool] = []

    async def sender() -> None:
        await a.async_send_bytes(payload)
        sent.append(True)
        await asyncio.sleep(0)  # the cancellation is seen here

    task = asyncio.create_task(sender())
    while not b.poll(0):  # it began: bytes are in the pipe
        await asyncio.sleep(0.005)
    task.cancel()
    got = await asyncio.wait_for(asyncio.to_thread(b.recv_bytes), 10)
    assert got == payload
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert sent == [True]  # reported as sent
    assert not b.poll(0.05)  # and sent once
    a.close()
    b.close()


async def test_a_cancelled_large_send_that_never_began_is_not_delivered() -> None:
    """A coroutine's send waits behind a thread's (blocked on a full pipe, holding the
    end's write lock): cancelled there, nothing of it is ever sent."""
    a, b = Pipe()
    first = b"t" * (4 * 1024 * 1024)  # far more than the pipe holds: the thread blocks
    thread_send = asyncio.ensure_future(asyncio.to_thread(a.send_bytes, first))
    while not b.poll(0):  # the thread's message began: it holds the write lock
        await asyncio.sleep(0.005)
    task = asyncio.create_task(a.async_send_bytes(b"q" * (1024 * 1024)))
    await async_wait_parked(on=a._wlock, count=1, timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert await asyncio.wait_for(asyncio.to_thread(b.recv_bytes), 10) == first
    await asyncio.wait_for(thread_send, 10)
    a.send("next")
    assert b.recv(timeout=5) == "next"  # (the cancelled message is not in between)
    a.close()
    b.close()


class _RefusingExecutor(ThreadPoolExecutor):
    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a pipe end must not need a worker thread to send")


async def test_a_big_async_send_needs_no_worker_thread() -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(_RefusingExecutor(max_workers=1))
    a, b = Pipe()
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB: many times what the pipe holds
    try:
        sender = asyncio.ensure_future(a.async_send_bytes(payload))
        got = await asyncio.wait_for(b.async_recv_bytes(), 20)
        await asyncio.wait_for(sender, 5)
        assert got == payload
    finally:
        a.close()
        b.close()


async def test_two_coroutines_receiving_on_one_end_are_both_served() -> None:
    """The loop keeps one reader per fd: a second coroutine waiting on the same end must not
    replace the first's wake-up (nor the first to leave remove the other's)."""
    a, b = Pipe()
    try:
        first = asyncio.ensure_future(b.async_recv())
        second = asyncio.ensure_future(b.async_recv())
        await async_wait_parked(on=b, count=2, timeout=10)
        a.send(1)
        a.send(2)
        got = await asyncio.wait_for(asyncio.gather(first, second), 10)
        assert sorted(got) == [1, 2]
    finally:
        a.close()
        b.close()
