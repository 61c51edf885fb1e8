"""SIGKILL at every stage of put/get on a shared queue (issue 11 deliver 2, issue 18 point 7).

For every kill: the survivors' calls end within their timeouts, no item is duplicated or
torn, at most the killed strand's in-flight item is lost, and afterwards no process of the
test is alive and nothing of the queue is left in ``/dev/shm``.

Deterministic kills walk through every store of an operation (``_faults.KillAtStore``: the
child SIGKILLs itself at its Nth store into the queue's shared memory); random kills hit
processes streaming through the queue at random moments (20 per kind here, 200 in the slow
tier).
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import random
import signal
import threading
import time
from typing import Any

import pytest
from _faults import WAIT_S, arm_store_kill, assert_clean, ctx, reap

from plait import Empty
from plait._channels import Queue

STAGES = 12  # more stores than any put or get makes (the last stages run to the end)


def _share(q: Queue[Any]) -> str:
    pickle.dumps(q)
    return q._shared.prefix  # type: ignore[no-any-return]


def _arm(q: Queue[Any], n: int) -> None:
    b = q._shared
    ring = b.ring
    arm_store_kill(n, [(ring, "hdr"), (b, "hdr"), (ring, "words"), (ring, "data"), (b, "waits")])


def _drain(q: Queue[Any]) -> list[Any]:
    out = []
    t0 = time.monotonic()
    while True:
        try:
            out.append(q.get(timeout=0.05))
        except Empty:
            break
        assert time.monotonic() - t0 < WAIT_S
    return out


def _digest(item: Any) -> str:
    return hashlib.sha256(pickle.dumps(item)).hexdigest()


# -- children --------------------------------------------------------------------------------


def put_dying_at(q: Queue[Any], n: int, item: Any, conn: Any) -> None:
    _arm(q, n)
    q.put(item)
    conn.send("finished")


def get_dying_at(q: Queue[Any], n: int, conn: Any) -> None:
    _arm(q, n)
    item = q.get(timeout=WAIT_S)
    conn.send(("finished", _digest(item)))  # (small: the parent reads it after the exit)


def park_in_get(q: Queue[Any]) -> None:
    q.get(timeout=60)


def own_a_queue(conn: Any) -> None:
    q: Queue[Any] = Queue()
    for i in range(5):
        q.put(i)
    conn.send(q)  # promotes it here: this process owns the memory
    conn.recv()  # the parent has attached
    os.kill(os.getpid(), signal.SIGKILL)


def stream_puts(q: Queue[Any], tag: int, conn: Any) -> None:
    q.put((tag, 0))
    conn.send("started")
    for i in range(1, 1_000_000):
        q.put((tag, i))


def stream_gets(q: Queue[Any], conn: Any) -> None:
    conn.send("started")
    while True:
        conn.send(q.get(timeout=60))


# -- every stage -----------------------------------------------------------------------------


ITEMS = [7, "x" * 100, b"y" * 300_000]


@pytest.mark.parametrize("item", ITEMS, ids=["int", "str", "300KB"])
def test_a_putter_killed_at_every_stage(item: Any) -> None:
    q: Queue[Any] = Queue()
    prefix = _share(q)
    pids = []
    for n in range(1, STAGES + 1):
        before = ["a", "b", 3]
        for x in before:
            q.put(x)
        mine, theirs = ctx().Pipe()
        p = ctx().Process(target=put_dying_at, args=(q, n, item, theirs))
        p.start()
        pids.append(p.pid)
        reap([p])
        finished = mine.poll(0) and mine.recv() == "finished"
        assert finished or p.exitcode == -signal.SIGKILL
        got = _drain(q)
        assert got in (before, [*before, item]), f"stage {n}: {got!r:.200}"
        if finished:
            assert got == [*before, item]
        q.put("still works")
        assert q.get(timeout=5) == "still works"
        assert q.qsize() == 0
    prefix_names = [prefix]
    del q
    gc.collect()
    assert_clean(prefix_names, pids)


@pytest.mark.parametrize("item", ITEMS, ids=["int", "str", "300KB"])
@pytest.mark.parametrize("queued", [1, 3])
def test_a_getter_killed_at_every_stage(item: Any, queued: int) -> None:
    q: Queue[Any] = Queue()
    prefix = _share(q)
    pids = []
    for n in range(1, STAGES + 1):
        before = [item, *range(queued - 1)]
        for x in before:
            q.put(x)
        mine, theirs = ctx().Pipe()
        p = ctx().Process(target=get_dying_at, args=(q, n, theirs))
        p.start()
        pids.append(p.pid)
        reap([p])
        result = mine.recv() if mine.poll(0) else None
        assert result is not None or p.exitcode == -signal.SIGKILL
        got = _drain(q)
        # the first item is gone (taken by the killed getter, its in-flight item) or not
        assert got in (before, before[1:]), f"stage {n}: {got!r:.200}"
        if result is not None:
            assert result == ("finished", _digest(item)) and got == before[1:]
        q.put("still works")  # and no old frame comes back (an interrupted reset)
        assert q.get(timeout=5) == "still works"
        assert q.qsize() == 0
    del q
    gc.collect()
    assert_clean([prefix], pids)


def test_a_parked_getter_killed_does_not_take_a_wakeup_from_the_living() -> None:
    q: Queue[Any] = Queue()
    prefix = _share(q)
    p = ctx().Process(target=park_in_get, args=(q,))
    p.start()
    deadline = time.monotonic() + WAIT_S
    while q.statistics().getters_waiting < 1:  # announced in the wait table
        assert time.monotonic() < deadline and p.is_alive()
        time.sleep(0.005)
    os.kill(p.pid, signal.SIGKILL)
    reap([p])
    got: list[Any] = []
    t = threading.Thread(target=lambda q=q: got.append(q.get(timeout=WAIT_S)))
    t.start()
    while q.statistics().getters_waiting < 2:  # the dead one is still counted
        assert time.monotonic() < deadline
        time.sleep(0.005)
    t0 = time.monotonic()
    q.put("for the living")
    t.join(WAIT_S)
    assert got == ["for the living"] and time.monotonic() - t0 < 5
    assert q.statistics().getters_waiting == 0  # the dead one's announcement is gone
    del q
    gc.collect()
    assert_clean([prefix], [p.pid])


def test_the_owner_of_the_memory_killed() -> None:
    mine, theirs = ctx().Pipe()
    p = ctx().Process(target=own_a_queue, args=(theirs,))
    p.start()
    q = mine.recv()
    prefix = q._shared.prefix
    mine.send("attached")
    reap([p])
    assert p.exitcode == -signal.SIGKILL
    assert [q.get(timeout=5) for _ in range(5)] == list(range(5))
    q.put("mine now")
    assert q.get(timeout=5) == "mine now"
    del q
    gc.collect()
    assert_clean([prefix], [p.pid])


# -- random kills ----------------------------------------------------------------------------


def _random_putter_kills(kills: int, seed: int) -> None:
    rng = random.Random(seed)
    q: Queue[Any] = Queue(rng.choice([0, 8]))
    prefix = _share(q)
    pids: list[int] = []
    batch = 4
    done = 0
    while done < kills:
        n = min(batch, kills - done)
        procs, conns = [], []
        for k in range(n):
            mine, theirs = ctx().Pipe()
            p = ctx().Process(target=stream_puts, args=(q, done + k, theirs))
            p.start()
            procs.append(p)
            conns.append(mine)
        pids += [p.pid for p in procs]
        got: list[Any] = []
        deadline = time.monotonic() + WAIT_S
        for c in conns:  # (a bounded queue: keep taking while they start)
            while not c.poll(0.001):
                assert time.monotonic() < deadline, "a producer did not start"
                got += [q.get(timeout=WAIT_S) for _ in range(q.qsize())]
            assert c.recv() == "started"
        for p in procs:
            time.sleep(rng.uniform(0, 0.004))
            got += [q.get(timeout=WAIT_S) for _ in range(min(q.qsize(), 3))]  # keep it moving
            os.kill(p.pid, signal.SIGKILL)
        reap(procs)
        got += _drain(q)
        per: dict[int, list[int]] = {}
        for tag, i in got:
            per.setdefault(tag, []).append(i)
        for k in range(n):
            seq = per.get(done + k, [])
            # each producer's items: a gap-free prefix (its in-flight put may be lost)
            assert seq == list(range(len(seq))) and seq, f"producer {done + k}: {seq[:20]}"
        done += n
    del q
    gc.collect()
    assert_clean([prefix], pids)


def _random_getter_kills(kills: int, seed: int) -> None:
    rng = random.Random(seed)
    q: Queue[Any] = Queue()
    prefix = _share(q)
    pids: list[int] = []
    batch = 4
    done = 0
    total = 0
    while done < kills:
        n = min(batch, kills - done)
        items = list(range(total, total + 2000))
        total += 2000
        for i in items:
            q.put(i)
        procs, conns = [], []
        for _ in range(n):
            mine, theirs = ctx().Pipe(duplex=False)
            p = ctx().Process(target=stream_gets, args=(q, theirs))
            p.start()
            theirs.close()
            procs.append(p)
            conns.append(mine)
        pids += [p.pid for p in procs]
        for c in conns:
            assert c.poll(WAIT_S) and c.recv() == "started"
        seen: list[int] = []
        for p in procs:
            time.sleep(rng.uniform(0, 0.004))
            os.kill(p.pid, signal.SIGKILL)
        reap(procs)
        for c in conns:
            while True:
                try:
                    seen.append(c.recv())
                except (EOFError, OSError, pickle.UnpicklingError):
                    break
        t0 = time.monotonic()
        seen += _drain(q)
        assert time.monotonic() - t0 < WAIT_S
        assert len(seen) == len(set(seen)), "an item was duplicated"
        missing = set(items) - set(seen)
        assert len(missing) <= n, f"{len(missing)} items lost by {n} killed getters"
        assert set(seen) <= set(items)
        done += n
    del q
    gc.collect()
    assert_clean([prefix], pids)


def test_random_kills_of_putters() -> None:
    _random_putter_kills(20, seed=11)


def test_random_kills_of_getters() -> None:
    _random_getter_kills(20, seed=18)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_random_kills_of_putters_slow() -> None:
    _random_putter_kills(200, seed=111)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_random_kills_of_getters_slow() -> None:
    _random_getter_kills(200, seed=181)
