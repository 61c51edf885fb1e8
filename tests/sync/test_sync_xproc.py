"""Primitives across processes: the same objects, passed at spawn or later, keep their
semantics; unshareable ones fail at the call; no named semaphore outlives its users."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any

import _xproc_children as kids
import pytest

import plait._sync as ps
from plait._errors import BrokenResourceError
from plait._ipc.context import get_context

SHM = Path("/dev/shm")


def _sems(everyone: bool = False) -> set[str]:
    """Named semaphores of shared primitives whose home is this test process.

    Names carry their home pid (``[sem.]plait_sync_<family>_<pid>_...``: the semaphores
    and the anchor segment), so another test run on the same machine at the same time
    never shows up here; ``everyone`` lists all.
    """
    mine = f"_{os.getpid()}_"
    return {
        p.name
        for p in SHM.iterdir()
        if p.name.startswith(("sem.plait_sync_", "plait_sync_")) and (everyone or mine in p.name)
    }


def _announced(cond: Any) -> int:
    """Waiters announced in a shared condition's wait table (every process)."""
    from plait._ipc import doorbell

    return doorbell.waiting(cond._shared.table, 0)


@pytest.fixture
def ctx() -> Any:
    return get_context()


@pytest.fixture(autouse=True)
def _no_leaked_semaphores() -> Any:
    before = _sems()
    yield
    gc.collect()
    deadline = time.monotonic() + 5
    while _sems() - before and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.02)
    assert not (_sems() - before), f"leaked: {sorted(_sems() - before)}"


def _run(ctx: Any, target: Any, *args: Any) -> Any:
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def _forked(target: Any, *args: Any) -> Any:
    """A started daemon child of the ``fork`` start method (the forked-child tests need a
    copy of this process: its shared objects' C state, its process tag)."""
    import multiprocessing
    import warnings

    with warnings.catch_warnings():
        # CPython 3.12 warns that fork() with threads running may deadlock: these children
        # run no code that takes a lock another thread may hold at the fork.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = multiprocessing.get_context("fork").Process(target=target, args=args, daemon=True)
        child.start()
    return child


def _join_ok(*procs: Any) -> None:
    for p in procs:
        p.join(30)
        assert p.exitcode == 0, p.exitcode


def test_unshared_objects_stay_in_process() -> None:
    lock = ps.Lock()
    assert type(lock) is ps.Lock and lock._shared is None


def test_lock_mutual_exclusion_across_processes(ctx: Any) -> None:
    lock = ps.Lock()
    value = ctx.RawValue("i", 0)
    procs = [_run(ctx, kids.count_under_lock, lock, value, 200) for _ in range(2)]
    procs.append(_run(ctx, kids.count_under_lock_async, lock, value, 200))
    kids.count_under_lock(lock, value, 200)  # this process too, through the same object
    _join_ok(*procs)
    assert value.value == 800
    assert not lock.locked()
    assert lock.statistics().waiting == 0


def test_rlock_across_processes(ctx: Any) -> None:
    rlock = ps.RLock()
    value = ctx.RawValue("i", 0)
    procs = [_run(ctx, kids.count_under_rlock, rlock, value, 100) for _ in range(2)]
    procs.append(_run(ctx, kids.count_under_lock_async, rlock, value, 100))
    with rlock, rlock:  # re-entered here while the children compete
        pass
    _join_ok(*procs)
    assert value.value == 300
    assert not rlock.locked()
    rlock.acquire()
    rlock.acquire()
    p = _run(ctx, kids.try_lock, rlock, 0.05)
    p.join(30)
    assert p.exitcode == 3  # held (twice) here, so not available there
    rlock.release()
    p = _run(ctx, kids.try_lock, rlock, 0.05)
    p.join(30)
    assert p.exitcode == 3  # still held once
    rlock.release()
    p = _run(ctx, kids.try_lock, rlock, 5)
    _join_ok(p)
    with pytest.raises(RuntimeError, match="un-acquired"):
        rlock.release()

    async def main() -> None:  # wait_for's new task on 3.11 still gives the caller ownership
        assert await asyncio.wait_for(rlock.async_acquire(), 5)
        assert await asyncio.wait_for(rlock.async_acquire(), 5)
        assert rlock.statistics().count == 2
        rlock.release()
        rlock.release()

    asyncio.run(main())
    assert not rlock.locked()


def test_lock_held_here_is_seen_there(ctx: Any) -> None:
    lock = ps.Lock()
    lock.acquire()
    p = _run(ctx, kids.try_lock, lock, 0.05)
    p.join(30)
    assert p.exitcode == 3  # it timed out: the lock was held by the parent
    lock.release()
    p = _run(ctx, kids.try_lock, lock, 5)
    _join_ok(p)
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()


def test_primitives_sent_to_a_running_worker(ctx: Any) -> None:
    inbox, outbox = ctx.Queue(), ctx.Queue()
    worker = _run(ctx, kids.serve_queue, inbox, outbox)
    try:
        lock = ps.Lock()
        inbox.put(("lock-take", lock))  # promoted as it is pickled into the queue
        assert outbox.get(timeout=30) == "taken"
        assert lock.locked()
        assert lock.acquire(timeout=0.05) is False
        inbox.put(("lock-release", lock))
        assert outbox.get(timeout=30) == "released"
        assert lock.acquire(timeout=5) is True
        inbox.put(("lock-try", lock))
        assert outbox.get(timeout=30) is False
        lock.release()

        event = ps.Event()
        inbox.put(("event-wait", event))
        time.sleep(0.05)
        event.set()
        assert outbox.get(timeout=30) is True
        event2 = ps.Event()
        inbox.put(("event-set", event2))
        assert event2.wait(10) is True
        assert outbox.get(timeout=30) == "set"

        sem = ps.BoundedSemaphore(1)
        sem.acquire()
        inbox.put(("sem-take", sem))
        time.sleep(0.05)
        sem.release()
        assert outbox.get(timeout=30) is True
        assert sem.acquire(False) is False
        inbox.put(("echo", sem))  # comes back as the very same object
        assert outbox.get(timeout=30) is sem
    finally:
        inbox.put(None)
        worker.join(30)
        inbox.close()
        outbox.close()
        inbox.join_thread()
        outbox.join_thread()
    assert worker.exitcode == 0


def test_coroutines_wait_for_a_lock_held_by_a_process(ctx: Any) -> None:
    lock, held, go = ps.Lock(), ps.Event(), ps.Event()
    p = _run(ctx, kids.hold_until, lock, held, go)

    async def main() -> int:
        assert await held.async_wait(30)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick = asyncio.create_task(ticker())
        waiter = asyncio.create_task(lock.async_acquire())
        cancelled = asyncio.create_task(lock.async_acquire())
        timed = await lock.async_acquire(timeout=0.05)
        assert timed is False
        await asyncio.sleep(0.05)
        cancelled.cancel()
        go.set()
        assert await asyncio.wait_for(waiter, 30) is True
        lock.release()
        tick.cancel()
        await asyncio.gather(tick, cancelled, return_exceptions=True)
        return ticks

    ticks = asyncio.run(main())
    assert ticks > 10  # the loop kept running while the coroutines waited
    _join_ok(p)
    assert not lock.locked()


def test_semaphore_caps_processes(ctx: Any) -> None:
    sem = ps.Semaphore(2)
    guard = ps.Lock()
    inside, peak = ctx.RawValue("i", 0), ctx.RawValue("i", 0)
    procs = [_run(ctx, kids.semaphore_peak, sem, guard, inside, peak, 20) for _ in range(4)]
    _join_ok(*procs)
    assert 1 <= peak.value <= 2
    assert sem.statistics().value == 2
    with pytest.raises(ValueError, match="n must be one or more"):
        sem.release(0)


def test_bounded_semaphore_bound_holds_when_shared() -> None:
    sem = ps.BoundedSemaphore(2)
    pickle.dumps(sem)
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()
    assert sem.statistics().value == 2


def test_event_between_processes(ctx: Any) -> None:
    event = ps.Event()
    p = _run(ctx, kids.wait_event, event, 30)
    time.sleep(0.05)
    event.set()
    _join_ok(p)
    event.clear()
    assert not event.is_set()
    p = _run(ctx, kids.wait_event, event, 0.05)
    p.join(30)
    assert p.exitcode == 4
    p = _run(ctx, kids.set_event_after, event, 0.05)

    async def main() -> bool:
        return bool(await event.async_wait(30))

    assert asyncio.run(main()) is True
    _join_ok(p)


def test_local_waiters_move_to_the_shared_state_on_promotion(ctx: Any) -> None:
    import threading

    from plait.testing import wait_parked

    lock = ps.Lock()
    lock.acquire()
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=30)))
    t.start()
    wait_parked(on=lock, count=1)
    pickle.dumps(lock)  # promotion while a thread waits locally and the lock is held
    p = _run(ctx, kids.try_lock, lock, 0.05)
    p.join(30)
    assert p.exitcode == 3
    lock.release()
    t.join(30)
    assert got == [True]
    lock.release()
    assert not lock.locked()


def test_unshareable_primitives_fail_at_the_call() -> None:
    obj = ps.CapacityLimiter(1)
    with pytest.raises(TypeError, match="cannot be shared with another process"):
        pickle.dumps(obj)


def test_unshareable_primitive_fails_when_passed_to_a_process(ctx: Any) -> None:
    p = ctx.Process(target=kids.try_lock, args=(ps.CapacityLimiter(2), 0.1))
    with pytest.raises(TypeError, match=r"plait\.CapacityLimiter cannot be shared"):
        p.start()
    import threading

    with pytest.raises(TypeError, match=r"give it a plait\.Lock"):
        pickle.dumps(ps.Condition(threading.Lock()))


def test_use_after_release_is_a_clear_error() -> None:
    lock = ps.Lock()
    data = pickle.dumps(lock)
    del lock
    gc.collect()
    with pytest.raises(BrokenResourceError, match="released its process resources"):
        pickle.loads(data)


def test_crashed_holder_and_crashed_home_leave_nothing_behind(ctx: Any) -> None:
    before = _sems()
    # a child killed while it holds a lock and while others wait
    lock, held = ps.Lock(), ps.Event()
    p = _run(ctx, kids.hold_forever, lock, held)
    assert held.wait(30)
    waiter = _run(ctx, kids.try_lock, lock, 0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    waiter.join(30)
    assert waiter.exitcode in (3, 7)  # timed out before the kill, or told of it after
    assert p.exitcode == -signal.SIGKILL
    del lock, held
    gc.collect()
    assert _sems() - before == set()
    # the home process itself killed after sharing: the resource tracker removes them
    parent_end, child_end = ctx.Pipe()
    home = _run(ctx, kids.promote_and_die, child_end)
    child_end.close()
    prefixes = parent_end.recv()
    data = parent_end.recv()
    peers = [pickle.loads(d) for d in data]  # this process opens them before the crash
    parent_end.send("crash now")
    home.join(30)
    parent_end.close()
    assert home.exitcode == -signal.SIGKILL
    assert peers[0].acquire(timeout=5)  # still usable here: POSIX keeps an open one alive
    peers[0].release()
    del peers
    gc.collect()  # the last participant lets go: the home is dead, so it cleans up
    deadline = time.monotonic() + 10
    while any(n.startswith(p) for p in prefixes for n in _sems(everyone=True)):
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: {sorted(_sems(everyone=True) - before)}")
        time.sleep(0.05)
    with pytest.raises(BrokenResourceError):
        pickle.loads(data[0])


def test_sweep_removes_names_of_dead_homes(ctx: Any) -> None:
    from plait._sync import _xproc

    parent_end, child_end = ctx.Pipe()
    home = _run(ctx, kids.promote_and_die, child_end)
    child_end.close()
    prefixes = parent_end.recv()
    parent_end.recv()
    parent_end.send("crash now")
    home.join(30)
    parent_end.close()
    # (another process's first promotion may sweep them first: either way they go)
    _xproc.sweep()
    assert not any(n.startswith(p) for p in prefixes for n in _sems(everyone=True))


def test_shared_statistics_count_local_waiters() -> None:
    import threading

    from _sync_helpers import LoopThread

    from plait.testing import wait_parked

    lock = ps.Lock()
    pickle.dumps(lock)
    lock.acquire()
    thread = threading.Thread(target=lambda: lock.acquire(timeout=30) and lock.release())
    thread.start()
    with LoopThread() as loop:
        fut = loop.submit(lock.async_acquire(timeout=30))
        wait_parked(on=lock, count=2)
        stats = lock.statistics()
        assert stats.locked and stats.waiting == 2
        assert dict(stats.waiting_by_kind) == {"thread": 1, "async": 1}
        lock.release()
        assert fut.result(30) is True
        lock.release()
        thread.join(30)
    assert lock.statistics().waiting == 0 and not lock.locked()
    event = ps.Event()
    pickle.dumps(event)
    waiter = threading.Thread(target=event.wait, args=(30,))
    waiter.start()
    wait_parked(on=event, count=1)
    assert event.statistics().waiting == 1
    event.set()
    waiter.join(30)
    assert event.statistics().waiting == 0


@pytest.mark.parametrize("lock", [ps.Lock, ps.RLock])
def test_condition_across_processes(ctx: Any, lock: type) -> None:
    cond = ps.Condition(lock())
    value = ctx.RawValue("i", 0)
    waiters = [_run(ctx, kids.wait_condition, cond, value, 30) for _ in range(2)]
    # wait until both children announced themselves (in the condition's wait table)
    deadline = time.monotonic() + 30
    while cond._shared is None or _announced(cond) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.005)

    async def main() -> bool:
        async with cond:
            return bool(await cond.async_wait_for(lambda: value.value > 0, 30))

    notifier = _run(ctx, kids.notify_condition, cond, value)
    assert asyncio.run(main()) is True
    _join_ok(notifier, *waiters)
    with cond:
        assert cond.wait(0.01) is False  # nobody notifies: a plain timeout
    stats = cond.statistics()
    assert stats.waiting == 0 and stats.lock is not None and not stats.lock.locked
    assert _announced(cond) == 0  # every announcement withdrawn


def test_condition_notify_one_wakes_one_process(ctx: Any) -> None:
    cond = ps.Condition(ps.Lock())
    pickle.dumps(cond)
    waiters = [_run(ctx, kids.wait_condition_once, cond, 1.0) for _ in range(2)]
    deadline = time.monotonic() + 30
    while _announced(cond) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    with cond:
        cond.notify(1)
    for p in waiters:
        p.join(30)
    assert sorted(p.exitcode for p in waiters) == [0, 5]  # one notified, one timed out
    assert _announced(cond) == 0


def test_barrier_across_processes(ctx: Any) -> None:
    import threading

    barrier = ps.Barrier(4)
    procs = [_run(ctx, kids.barrier_wait, barrier, 30) for _ in range(2)]
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(barrier.wait(30)))
    thread.start()

    async def main() -> int:
        return await barrier.async_wait(30)

    results.append(asyncio.run(main()))
    thread.join(30)
    for p in procs:
        p.join(30)
    indices = sorted(results + [p.exitcode - 10 for p in procs])
    assert indices == [0, 1, 2, 3]
    assert barrier.n_waiting == 0 and not barrier.broken
    # a second round works too, and abort() here breaks a wait there
    p = _run(ctx, kids.barrier_wait, barrier, 30)
    deadline = time.monotonic() + 30
    while barrier.n_waiting < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    barrier.abort()
    p.join(30)
    assert p.exitcode == 6
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken


class _ParkRecorder:
    """Park and unpark events of one object, with the strand's state as the hook saw it."""

    def __init__(self, on: object) -> None:
        import threading

        from plait._core import Instrument

        recorder = self
        self.events: list[tuple[str, str, str]] = []
        lock = threading.Lock()

        class _Instrument(Instrument):
            def strand_parked(self, strand: Any, on_: object) -> None:
                if on_ is on:
                    with lock:
                        recorder.events.append(("parked", strand.state, ""))

            def strand_unparked(self, strand: Any, on_: object, outcome: str) -> None:
                if on_ is on:
                    with lock:
                        recorder.events.append(("unparked", strand.state, outcome))

        self.instrument = _Instrument()


@pytest.mark.parametrize("outcome", ["woken", "timeout"])
def test_shared_event_wait_parks_through_the_kernel(outcome: str) -> None:
    """A wait on a shared event is a kernel park: one park and one unpark event carrying
    the event, the strand parked on it meanwhile (no strand marked by hand)."""
    import threading

    from plait._core import add_instrument, remove_instrument
    from plait.testing import wait_parked

    event = ps.Event()
    pickle.dumps(event)  # shared
    rec = _ParkRecorder(event)
    add_instrument(rec.instrument)
    try:
        result: list[bool] = []
        strand_seen: list[Any] = []

        def waiter() -> None:
            from plait._core import current_strand

            strand_seen.append(current_strand())
            result.append(event.wait(30 if outcome == "woken" else 0.1))

        thread = threading.Thread(target=waiter)
        thread.start()
        if outcome == "woken":
            wait_parked(on=event, count=1)
            assert strand_seen[0].state == "parked" and strand_seen[0].parked_on is event
            event.set()
        thread.join(30)
    finally:
        remove_instrument(rec.instrument)
    assert result == [outcome == "woken"]
    assert rec.events == [("parked", "parked", ""), ("unparked", "running", outcome)]
    assert strand_seen[0].parked_on is None

    async def main() -> bool:
        return await event.async_wait(5)

    add_instrument(rec.instrument)
    rec.events.clear()
    try:
        if outcome == "woken":
            event.clear()
            threading.Timer(0.05, event.set).start()
            assert asyncio.run(main()) is True
        else:
            event.clear()
            assert asyncio.run(asyncio.wait_for(event.async_wait(0.1), 5)) is False
    finally:
        remove_instrument(rec.instrument)
    assert [e[0] for e in rec.events] == ["parked", "unparked"]
    assert rec.events[1][2] == outcome


@pytest.mark.parametrize("kind", ["Lock", "Semaphore", "Event", "Condition"])
def test_shared_waits_honour_cancel_scopes(ctx: Any, kind: str) -> None:
    """A thread waiting on a shared object leaves at its scope's deadline."""
    import plait

    obj: Any = {"Lock": ps.Lock, "Semaphore": lambda: ps.Semaphore(0), "Event": ps.Event}.get(
        kind, lambda: ps.Condition(ps.Lock())
    )()
    held, go = ps.Event(), ps.Event()
    p = None
    if kind == "Lock":
        p = _run(ctx, kids.hold_until, obj, held, go)
        assert held.wait(30)
    else:
        pickle.dumps(obj)
    start = time.monotonic()
    with plait.move_on_after(0.2) as scope:
        if kind == "Condition":
            with obj:
                obj.wait(20)
        elif kind == "Event":
            obj.wait(20)
        else:
            obj.acquire(timeout=20)
    elapsed = time.monotonic() - start
    go.set()
    if p is not None:
        _join_ok(p)
    assert scope.cancelled_caught
    assert elapsed < 2.0, elapsed


def test_a_shared_locks_uncontended_take_and_give_are_one_c_call_each() -> None:
    """With the C module, a shared Lock's backend takes and gives in one call (the fast
    paths of ``with lock:``); either way the words it leaves are those of the slow paths:
    the holder's tag while held, 0 when free, a held lock refuses a second take, a free
    one refuses a release, and a give with a waiter announced leaves it to the slow path
    (which rings)."""
    from plait._ipc import robust
    from plait._sync import _robust, _shared

    lock = ps.Lock()
    pickle.dumps(lock)
    backend = lock._shared  # type: ignore[attr-defined]
    if os.environ.get("PLAIT_NO_SPEEDUPS"):
        assert robust._take is None and type(backend).acquire is _shared.LockBackend._acquire_py
    else:
        assert robust._take is not None and type(backend).acquire is _shared.LockBackend._acquire_c
        assert robust._take(backend.addr, backend.waddr, _robust.TAG) == 1
        assert robust._take(backend.addr, backend.waddr, _robust.TAG) == 0  # held
        assert backend.words[0] == _robust.TAG
        backend.table[0] += 1  # as if a waiter were announced: the give is not done here
        assert robust._give(backend.addr, backend.waddr, backend.taddr) == 0
        backend.table[0] -= 1
        assert robust._give(backend.addr, backend.waddr, backend.taddr) == 1
        assert backend.words[0] == 0
        assert robust._give(backend.addr, backend.waddr, backend.taddr) == 0  # free
    assert lock.acquire() and backend.words[0] == _robust.TAG
    assert not lock.acquire(False)
    lock.release()
    assert backend.words[0] == 0 and not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def test_a_held_shared_lock_says_so_without_taking_its_mutex() -> None:
    """A try at a held shared lock answers from the holder word, never waiting for the
    lock's inner mutex: many processes trying at once must not hold up the holder's
    release, which needs that mutex. Here the test itself holds the mutex -- a try that
    took it would fail (C) or wait for good (Python)."""
    from plait._ipc import robust
    from plait._sync import _robust

    lock = ps.Lock()
    pickle.dumps(lock)
    backend = lock._shared  # type: ignore[attr-defined]
    assert lock.acquire()
    assert robust._trylock(backend.addr) == 0
    try:
        assert backend._acquire_py() is False
        if robust._take is not None:
            assert robust._take(backend.addr, backend.waddr, _robust.TAG) == 0
        assert not backend._free()
    finally:
        robust._unlock(backend.addr)
    lock.release()
    assert backend._free() and backend._quick() is True and backend.words[0] == _robust.TAG
    lock.release()
    assert not lock.locked()


def test_a_shared_locks_uncontended_paths_run_without_a_python_frame() -> None:
    """With the C accelerator, a shared lock's ``with``, ``acquire()``/``release()`` and
    ``acquire(False)`` run no Python function while uncontended (a profiler sees C calls
    only), and leave what the Python paths would: this process's tag while held, the
    taking thread recorded for the deadlock detector, 0 when free."""
    import sys

    from plait._core.strands import FASTLOCK
    from plait._sync import _robust

    if FASTLOCK is None:
        pytest.skip("the C accelerator is not built or PLAIT_NO_SPEEDUPS is set")
    lock = ps.Lock()
    pickle.dumps(lock)
    backend = lock._shared  # type: ignore[attr-defined]
    assert type(lock._inner) is FASTLOCK.SharedInner  # type: ignore[attr-defined]
    calls: list[str] = []
    seen: list[tuple[int, int]] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        with lock:
            seen.append((backend.words[0], lock._owner_ident))  # type: ignore[attr-defined]
        assert lock.acquire()
        lock.release()
        assert lock.acquire(False)
        lock.release()
    finally:
        sys.setprofile(None)
    assert calls == [], " ".join(calls)
    assert seen == [(_robust.TAG, FASTLOCK.thread_key())]
    assert backend.words[0] == 0 and not lock.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()  # (the C give declines; the Python path raises)


def test_a_forked_child_takes_a_shared_lock_in_its_own_name() -> None:
    """The C take writes the process's tag, which a forked child must renew (else the
    child's take would name the parent). Here a forked child takes the lock on the C
    path and is killed holding it: the holder word names the child, and the parent is told
    the child died holding it."""
    from plait._sync import _robust

    lock = ps.Lock()
    pickle.dumps(lock)
    backend = lock._shared  # type: ignore[attr-defined]
    r, w = os.pipe()

    def hold() -> None:
        lock.acquire()
        os.write(w, b"x")
        time.sleep(120)

    child = _forked(hold)
    try:
        assert os.read(r, 1) == b"x"
        assert _robust.tag_pid(int(backend.words[0])) == child.pid
        assert backend.words[0] != _robust.TAG
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        os.close(r)
        os.close(w)
    with pytest.raises(BrokenResourceError, match=str(child.pid)):
        lock.acquire(timeout=10)
    assert lock.acquire(timeout=10)
    lock.release()


def test_a_shared_semaphores_c_take_and_give_leave_the_python_paths_words() -> None:
    """With the C module, a shared Semaphore's uncontended take and give run in C (its
    backend's ``port``) once this process has its slot, and change the words as the
    Python paths do: a permit counted in this process's slot while held; a give past a
    BoundedSemaphore's bound, or with a waiter to ring, is left to the Python path."""
    from plait._ipc import robust
    from plait._sync import _robust
    from plait._sync._xproc import INITIAL, VALUE

    sem = ps.BoundedSemaphore(2)
    pickle.dumps(sem)
    backend = sem._shared  # type: ignore[attr-defined]
    port = backend.port
    if robust.SemPort is None:
        assert port is None
        pytest.skip("the C module is not built or PLAIT_NO_SPEEDUPS is set")
    assert port.slot == -1 and port.take() == 0  # no slot yet: the Python path claims it
    with sem:
        pass
    i = port.slot
    assert i >= 0 and backend.slots.words[2 * i] == _robust.TAG
    assert port.take() == 1  # in C now
    assert (backend.words[VALUE], backend.slots.words[2 * i + 1]) == (1, 1)
    with sem:
        assert backend.words[VALUE] == 0 and backend.slots.words[2 * i + 1] == 2
        assert port.take() == 0  # none free
    assert port.give(1, True) == 1
    assert (backend.words[VALUE], backend.slots.words[2 * i + 1]) == (2, 0)
    assert port.give(1, True) == 0  # past the bound: the Python path raises
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()
    assert backend.words[VALUE] == backend.words[INITIAL] == 2
    backend.table[0] += 1  # as if a waiter were announced: the give is not done in C
    try:
        assert port.take() == 1 and port.give(1, True) == 0
    finally:
        backend.table[0] -= 1
    sem.release()
    assert backend.words[VALUE] == 2 and backend.slots.words[2 * i + 1] == 0


def test_a_forked_child_counts_its_permits_in_its_own_slot() -> None:
    """The parent's C path knows the parent's slot; a forked child inherits it, but its
    tag differs, so its take goes to the Python path, which claims the child's own slot.
    Killed holding the permit, the child is named to the parent, and the permit comes
    back."""
    from plait._sync import _robust

    sem = ps.Semaphore(1)
    pickle.dumps(sem)
    backend = sem._shared  # type: ignore[attr-defined]
    with sem:  # the parent's slot, known to its C path from now on
        pass
    r, w = os.pipe()

    def hold() -> None:
        sem.acquire()
        os.write(w, b"x")
        time.sleep(120)

    child = _forked(hold)
    try:
        assert os.read(r, 1) == b"x"
        counts = {
            _robust.tag_pid(int(backend.slots.words[2 * j])): int(backend.slots.words[2 * j + 1])
            for j in range(_robust.NSLOTS)
            if backend.slots.words[2 * j]
        }
        assert counts == {os.getpid(): 0, child.pid: 1}
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        os.close(r)
        os.close(w)
    with pytest.raises(BrokenResourceError, match=str(child.pid)):
        sem.acquire(timeout=10)
    assert sem.acquire(timeout=10)
    sem.release()


def _die_holding_the_inner_mutex(addr: int) -> None:
    from plait._ipc import robust

    assert robust._trylock(addr) == 0
    os.kill(os.getpid(), signal.SIGKILL)  # never unlocks it


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore"])
def test_a_fast_path_that_finds_the_inner_mutex_of_a_dead_process_repairs_it(
    kind: str,
) -> None:
    """A process killed while it held a shared primitive's inner (robust) mutex leaves it
    to the next taker, who gets it with EOWNERDEAD: the C fast paths must have it repaired
    and freed before anything else waits for it (a Python path that followed would wait for
    a mutex this very thread holds)."""
    obj = getattr(ps, kind)()
    pickle.dumps(obj)
    backend = obj._shared  # type: ignore[attr-defined]
    with obj:  # (a semaphore's C path knows its slot from now on)
        pass
    child = _forked(_die_holding_the_inner_mutex, backend.addr)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    with obj:  # the C take meets EOWNERDEAD
        pass
    assert obj.acquire(timeout=5)
    obj.release()
