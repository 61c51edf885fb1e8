"""A shared queue holds more than its ring: frames go on to an overflow chain, in order.

An unbounded queue never turns a put away for lack of bytes (``multiprocessing.Queue``'s
behaviour: only ``maxsize`` makes a writer wait), and a bounded one waits on ``maxsize``
alone. The chain's segments go as they are read, or with the queue.
"""

from __future__ import annotations

import gc
import os
import pickle
from typing import Any

import pytest

from plait._channels import Full, Queue
from plait._errors import ClosedError
from plait._ipc import shm
from plait._ipc.context import get_context

RING_ITEMS = 8 * 1024 * 1024 // 16  # small ints the ring holds (16 bytes a frame)


def _start(target: Any, *args: Any) -> Any:
    ctx: Any = get_context()
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def _chain_names(prefix: str) -> list[str]:
    return [n for n in os.listdir(shm.SHM_DIR) if n.startswith(prefix + "ovf")]


def put_ints(q: Queue[Any], start: int, n: int) -> None:
    for i in range(start, start + n):
        q.put(i)


def put_tagged(q: Queue[Any], tag: str, n: int) -> None:
    for i in range(n):
        q.put((tag, i))


def put_blobs(q: Queue[Any], n: int, size: int) -> None:
    for i in range(n):
        q.put(str(i) * (size // len(str(i))))


def test_a_child_puts_more_than_the_ring_holds_and_exits() -> None:
    n = RING_ITEMS + 200_000
    q: Queue[int] = Queue()
    p = _start(put_ints, q, 0, n)
    p.join(60)  # never waits for a reader: the rest went to the overflow chain
    assert p.exitcode == 0
    prefix = q._shared.prefix
    assert q.qsize() == n
    assert _chain_names(prefix), "the ring was expected to overflow"
    assert [q.get() for _ in range(n)] == list(range(n))
    assert _chain_names(prefix) == []  # each segment went once read
    q.put(7)  # back on the ring
    assert q.get_nowait() == 7


def test_reading_while_the_chain_grows_keeps_order() -> None:
    """The reader moves from the ring to the chain and back while a writer keeps going."""
    n = 2 * RING_ITEMS
    q: Queue[int] = Queue()
    p = _start(put_ints, q, 0, n)
    got = [q.get(timeout=30) for _ in range(n)]
    p.join(30)
    assert p.exitcode == 0
    assert got == list(range(n))
    assert _chain_names(q._shared.prefix) == []


def test_two_producers_through_the_chain_each_in_order() -> None:
    n = RING_ITEMS // 2 + 100_000
    q: Queue[tuple[str, int]] = Queue()
    ps = [_start(put_tagged, q, tag, n) for tag in ("a", "b")]
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    got = [q.get() for _ in range(2 * n)]
    for tag in ("a", "b"):
        assert [i for t, i in got if t == tag] == list(range(n))


def test_big_frames_overflow_too() -> None:
    """Frames of 64 KiB (pickled inline, under the spill size): 24 MiB queued, unread."""
    q: Queue[str] = Queue()
    p = _start(put_blobs, q, 384, 64 * 1024)
    p.join(60)
    assert p.exitcode == 0
    got = [q.get() for _ in range(384)]
    assert [len(s) // 1000 for s in got[:1]] == [65]
    assert all(s.startswith(str(i)) for i, s in enumerate(got))


def test_a_bounded_queue_waits_on_maxsize_alone() -> None:
    maxsize = RING_ITEMS + 50_000
    q: Queue[int] = Queue(maxsize)
    p = _start(put_ints, q, 0, maxsize)
    p.join(60)  # more items than the ring holds, all within maxsize: no wait
    assert p.exitcode == 0
    assert q.full()
    with pytest.raises(Full):
        q.put_nowait(-1)
    assert q.get() == 0
    q.put_nowait(maxsize)  # a slot again
    assert [q.get() for _ in range(maxsize)] == list(range(1, maxsize + 1))


def test_close_drains_the_chain_then_raises() -> None:
    q: Queue[int] = Queue()
    pickle.dumps(q)  # shared now (the parent writes the ring and the chain itself)
    n = RING_ITEMS + 10_000
    for i in range(n):
        q.put(i)
    q.close()
    assert list(q) == list(range(n))
    with pytest.raises(ClosedError):
        q.get_nowait()


def test_a_queue_dropped_with_a_chain_leaves_nothing() -> None:
    q: Queue[int] = Queue()
    pickle.dumps(q)
    for i in range(RING_ITEMS + 10_000):
        q.put(i)
    prefix = q._shared.prefix
    assert _chain_names(prefix)
    del q
    gc.collect()
    assert [n for n in os.listdir(shm.SHM_DIR) if prefix in n] == []


def put_megabytes(q: Queue[Any], n: int) -> None:
    for i in range(n):
        q.put(bytes([i]) * (1024 * 1024))


def test_big_frames_take_segments_of_their_own_not_the_chain() -> None:
    """Frames over OVERFLOW_MAX wait a moment for the ring, then spill: the chain holds
    only their small references (big data never piles up in it)."""
    q: Queue[bytes] = Queue()
    p = _start(put_megabytes, q, 24)  # 24 MiB, three times the ring, nobody reading
    p.join(60)
    assert p.exitcode == 0
    prefix = q._shared.prefix
    chain = _chain_names(prefix)
    chain_bytes = sum(os.stat(os.path.join(shm.SHM_DIR, n)).st_blocks * 512 for n in chain)
    assert chain_bytes < 1024 * 1024
    assert [q.get()[:1] for _ in range(24)] == [bytes([i]) for i in range(24)]


def test_a_writer_lets_go_of_segments_read_elsewhere() -> None:
    """The process that wrote a chain unmaps its segments once another process has read
    them (a mapping would keep their memory alive), the next time it overflows."""
    q: Queue[int] = Queue()
    pickle.dumps(q)  # shared: this process writes, a child reads
    ring = q._shared.ring
    for _round in range(2):
        for i in range(RING_ITEMS + 1000):
            q.put(i)
        first_ids = set(ring.chain)
        assert first_ids
        p = _start(get_n, q, RING_ITEMS + 1000)
        p.join(60)
        assert p.exitcode == 0
        assert q.qsize() == 0
    assert len(ring.chain) <= 1  # only the newest segment is still mapped here


def get_n(q: Queue[Any], n: int) -> None:
    for _ in range(n):
        q.get(timeout=30)
