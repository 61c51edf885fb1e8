"""Functions that run in child processes for the cross-process primitive tests."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import time
from typing import Any


def count_under_lock(lock: Any, value: Any, n: int) -> None:
    for _ in range(n):
        with lock:
            v = value.value
            time.sleep(0)
            value.value = v + 1


def count_under_rlock(lock: Any, value: Any, n: int) -> None:
    for _ in range(n):
        with lock:
            with lock:
                v = value.value
            time.sleep(0)
            value.value = v + 1


def count_under_lock_async(lock: Any, value: Any, n: int) -> None:
    async def main() -> None:
        async def one(k: int) -> None:
            for _ in range(k):
                async with lock:
                    v = value.value
                    await asyncio.sleep(0)
                    value.value = v + 1

        await asyncio.gather(one(n // 2), one(n - n // 2))

    asyncio.run(main())


def try_lock(lock: Any, timeout: float) -> None:
    from plait import BrokenResourceError

    try:
        got = lock.acquire(timeout=timeout)
    except BrokenResourceError:
        raise SystemExit(7) from None  # its holder died: reported, and free again
    if got:
        lock.release()
    raise SystemExit(0 if got else 3)


def hold_until(lock: Any, held: Any, go: Any) -> None:
    with lock:
        held.set()
        go.wait(30)


def hold_forever(lock: Any, held: Any) -> None:
    lock.acquire()
    held.set()
    time.sleep(60)


def serve_queue(inbox: Any, outbox: Any) -> None:
    """A worker that is already running when the primitives reach it."""
    while True:
        item = inbox.get()
        if item is None:
            return
        what, obj = item
        if what == "lock-try":
            outbox.put(obj.acquire(False))
        elif what == "lock-take":
            obj.acquire()
            outbox.put("taken")
        elif what == "lock-release":
            obj.release()
            outbox.put("released")
        elif what == "event-set":
            obj.set()
            outbox.put("set")
        elif what == "event-wait":
            outbox.put(obj.wait(10))
        elif what == "sem-take":
            outbox.put(obj.acquire(timeout=10))
        elif what == "echo":
            outbox.put(obj)


def semaphore_peak(sem: Any, guard: Any, inside: Any, peak: Any, n: int) -> None:
    for _ in range(n):
        with sem:
            with guard:
                inside.value += 1
                peak.value = max(peak.value, inside.value)
            time.sleep(0.001)
            with guard:
                inside.value -= 1


def wait_event(event: Any, timeout: float) -> None:
    raise SystemExit(0 if event.wait(timeout) else 4)


def set_event_after(event: Any, delay: float) -> None:
    time.sleep(delay)
    event.set()


def promote_and_die(conn: Any) -> None:
    """Create and share primitives here (this process is their home), then crash."""
    import plait._sync as ps

    lock, sem, ev = ps.Lock(), ps.Semaphore(2), ps.Event()
    data = [pickle.dumps(o) for o in (lock, sem, ev)]
    conn.send([o._shared.prefix for o in (lock, sem, ev)])
    conn.send(data)
    conn.recv()  # the parent has opened them (or does not want to)
    conn.close()
    os.kill(os.getpid(), signal.SIGKILL)


def wait_condition(cond: Any, value: Any, timeout: float) -> None:
    with cond:
        ok = cond.wait_for(lambda: value.value > 0, timeout)
    raise SystemExit(0 if ok else 5)


def wait_condition_once(cond: Any, timeout: float) -> None:
    with cond:
        ok = cond.wait(timeout)
    raise SystemExit(0 if ok else 5)


def notify_condition(cond: Any, value: Any) -> None:
    with cond:
        value.value = 1
        cond.notify_all()


def barrier_wait(barrier: Any, timeout: float) -> None:
    import threading

    try:
        index = barrier.wait(timeout)
    except threading.BrokenBarrierError:
        raise SystemExit(6) from None
    raise SystemExit(10 + index)


def report_types(objs: list[Any], q: Any) -> None:
    """Send back each shared object's type, whether it is shared, and whether a round
    trip through pickle gives the same object here too."""
    q.put([(type(o), o._shared is not None, pickle.loads(pickle.dumps(o)) is o) for o in objs])
