"""Waiting on a shared queue (issue 11, points 2 and 3).

Coroutines park on their loop (no default-executor thread each), threads park through the
kernel (cancel scopes, ``tg.cancel()``, ``timeout=inf``), and a holder killed inside the
queue's lock leaves it usable (issue 11 point 1; the fault suite in ``tests/faults`` goes
through every stage).
"""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import signal
import socket
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import plait
from plait._channels import LifoQueue, Queue
from plait._ipc import doorbell
from plait._ipc.context import get_context
from plait.testing import wait_parked

WAIT_S = 20.0


def _share(q: Queue[Any]) -> Any:
    pickle.dumps(q)  # promotes it
    return q._shared


def _ctx() -> Any:
    return get_context()


def consume_until_none(q: Queue[Any], out: Queue[Any]) -> None:
    got = []
    while True:
        item = q.get(timeout=WAIT_S)
        if item is None:
            break
        got.append(item)
    out.put(got)


def die_holding_the_lock(q: Queue[Any]) -> None:
    q._shared._acquire(None)
    os.kill(os.getpid(), signal.SIGKILL)


# -- coroutines: no thread per waiter ------------------------------------------------------


async def test_six_waiting_coroutines_do_not_starve_the_default_executor() -> None:
    q: Queue[Any] = Queue()
    _share(q)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2))  # smaller than the waiters
    before = threading.active_count()
    consumers = [asyncio.create_task(q.async_get()) for _ in range(6)]
    await plait.testing.async_wait_parked(on=q, count=6, timeout=WAIT_S)
    assert threading.active_count() - before <= 1  # at most this process's doorbell watcher
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 5) == 42
    assert await asyncio.wait_for(loop.getaddrinfo("localhost", 80), 5)
    for i in range(6):
        q.put(i)
    got = await asyncio.wait_for(asyncio.gather(*consumers), WAIT_S)
    assert sorted(got) == list(range(6))


async def test_coroutines_and_a_process_on_a_bounded_shared_queue_do_not_deadlock() -> None:
    q: Queue[Any] = Queue(2)
    out: Queue[Any] = Queue()
    p = _ctx().Process(target=consume_until_none, args=(q, out))
    p.start()
    try:
        n_prod, per = 4, 60
        taken: list[Any] = []

        async def produce(k: int) -> None:
            for i in range(per):
                await q.async_put((k, i))

        async def consume() -> None:
            while True:
                item = await q.async_get()
                if item is None:
                    return
                taken.append(item)

        async with plait.fail_after(WAIT_S):
            consumers = [asyncio.create_task(consume()) for _ in range(3)]
            await asyncio.gather(*(produce(k) for k in range(n_prod)))
            for _ in range(4):  # one end marker per consumer (three here, one in the child)
                await q.async_put(None)
            await asyncio.gather(*consumers)
            theirs = await asyncio.wait_for(out.async_get(), WAIT_S)
        everything = taken + [tuple(t) for t in theirs]
        assert sorted(everything) == [(k, i) for k in range(n_prod) for i in range(per)]
    finally:
        p.join(WAIT_S)
        if p.is_alive():
            p.kill()
            p.join()


async def test_fail_after_ends_coroutines_waiting_on_a_full_or_empty_shared_queue() -> None:
    empty: Queue[Any] = Queue()
    full: Queue[Any] = Queue(1)
    _share(empty)
    _share(full)
    full.put("x")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        async with plait.fail_after(0.3):
            await asyncio.gather(empty.async_get(), full.async_put("y"), empty.async_get())
    assert time.monotonic() - t0 < 5
    stats = empty.statistics()
    assert stats.getters_waiting == 0  # the cancelled waiters took their announcements back
    assert full.statistics().putters_waiting == 0
    full.get_nowait()
    assert full.qsize() == 0  # "y" was never put


# -- threads: the kernel's park ------------------------------------------------------------


def test_move_on_after_ends_a_thread_blocked_on_a_shared_queue() -> None:
    q: Queue[Any] = Queue(1)
    _share(q)
    t0 = time.monotonic()
    with plait.move_on_after(0.3) as scope:
        q.get()
    assert scope.cancelled_caught
    q.put(1)
    with plait.move_on_after(0.3) as scope:
        q.put(2)
    assert scope.cancelled_caught
    with plait.move_on_after(0.3) as scope:
        q.join()
    assert scope.cancelled_caught
    assert time.monotonic() - t0 < 5
    assert q.get_nowait() == 1


@pytest.mark.parametrize("op", ["get", "put", "join"])
def test_tg_cancel_reaches_a_thread_strand_blocked_on_a_shared_queue(op: str) -> None:
    q: Queue[Any] = Queue(1)
    _share(q)
    q.put("first")  # full (for put) and one task unfinished (for join)
    if op == "get":
        q.get()

    box = [q]  # (emptied after: an idle cached thread keeps its last strand's arguments)

    def blocked() -> None:
        getattr(box[0], op)(*(("second",) if op == "put" else ()))

    t0 = time.monotonic()
    with plait.TaskGroup() as tg:
        tg.spawn(blocked, on="thread")
        wait_parked(on=q, count=1, timeout=WAIT_S)
        tg.cancel()
    box.clear()
    assert time.monotonic() - t0 < 5
    assert q.statistics().getters_waiting == 0 and q.statistics().putters_waiting == 0


def test_timeout_inf_waits_until_an_item_comes() -> None:
    q: Queue[Any] = Queue()
    _share(q)
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=math.inf)))
    t.start()
    wait_parked(on=q, count=1, timeout=WAIT_S)
    q.put("late")
    t.join(WAIT_S)
    assert got == ["late"]
    q.put("x", timeout=math.inf)
    assert q.get(timeout=math.inf) == "x"


def test_get_nowait_and_timeouts_hold_while_another_thread_holds_the_lock() -> None:
    q: Queue[Any] = Queue()
    backend = _share(q)
    q.put(1)
    backend._acquire(None)  # a holder that never lets go (of this thread)
    try:
        box: list[Any] = []

        def other() -> None:
            t0 = time.monotonic()
            try:
                q.get(timeout=0.3)
            except plait.Empty:
                box.append(time.monotonic() - t0)

        t = threading.Thread(target=other)
        t.start()
        t.join(WAIT_S)
        assert box and box[0] < 5
    finally:
        backend._release()
    assert q.get_nowait() == 1


# -- a holder killed inside the lock -------------------------------------------------------


def test_a_process_killed_holding_the_lock_does_not_wedge_the_queue() -> None:
    q: Queue[Any] = Queue()
    _share(q)
    q.put("before")
    p = _ctx().Process(target=die_holding_the_lock, args=(q,))
    p.start()
    p.join(WAIT_S)
    assert p.exitcode == -signal.SIGKILL
    t0 = time.monotonic()
    assert q.get(timeout=5) == "before"
    q.put("after")
    assert q.get_nowait() == "after"
    with pytest.raises(plait.Empty):
        q.get_nowait()
    assert time.monotonic() - t0 < 5


def test_a_process_without_a_slot_in_a_full_wait_table_still_waits_right() -> None:
    from plait._ipc import doorbell, shm

    q: Queue[Any] = Queue()
    backend = _share(q)
    ppid = os.getppid()
    start = shm.start_ticks(ppid)
    assert start is not None and start >= 0
    table = backend.waits
    with backend.lock:  # every slot taken by a live process (our parent)
        for i in range(doorbell.SLOTS):
            base = doorbell._TOTALS + i * doorbell._W
            table[base + doorbell._TAG] = ppid << 40 | start
            table[base + doorbell._ROOM] = 10_000 + i
    t0 = time.monotonic()
    with pytest.raises(plait.Empty):
        q.get(timeout=0.2)
    assert time.monotonic() - t0 < 5
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=WAIT_S)))
    t.start()
    wait_parked(on=q, count=1, timeout=WAIT_S)
    q.put("found by looking again")
    t.join(WAIT_S)
    assert got == ["found by looking again"]
    with backend.lock:
        for i in range(doorbell.SLOTS):
            base = doorbell._TOTALS + i * doorbell._W
            table[base + doorbell._TAG] = table[base + doorbell._ROOM] = 0


def test_a_lifo_queue_whose_holder_died_is_broken_for_everyone() -> None:
    q: LifoQueue[Any] = LifoQueue()
    _share(q)
    q.put("x")
    p = _ctx().Process(target=die_holding_the_lock, args=(q,))
    p.start()
    p.join(WAIT_S)
    assert p.exitcode == -signal.SIGKILL
    for call in (lambda: q.get(timeout=1), lambda: q.put("y"), q.get_nowait):
        with pytest.raises(plait.BrokenResourceError, match="is broken"):
            call()


@pytest.mark.skipif(bool(os.environ.get("PLAIT_NO_SPEEDUPS")), reason="accelerators off")
def test_the_robust_lock_runs_on_its_c_module_where_it_is_built() -> None:
    import importlib.util

    from plait._ipc import robust

    if importlib.util.find_spec("plait._ipc._robust") is None:
        pytest.skip("plait._ipc._robust was not built here (no compiler): ctypes is used")
    assert robust._lib.__name__ == "plait._ipc._robust"


def test_a_bell_closed_as_soon_as_it_is_made_stops_cleanly() -> None:
    """The watcher never registers a listener its bell already closed (its last room went
    away at once): every watcher ends, none with an exception."""
    errors: list[BaseException] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment]
    try:
        for _ in range(50):
            bell = doorbell._Bell()
            bell.close()
            bell.thread.join(WAIT_S)
            assert not bell.thread.is_alive()
    finally:
        threading.excepthook = old_hook
    assert errors == []


def set_event(ev: Any) -> None:
    ev.set()


def test_a_bell_whose_watcher_died_is_replaced_by_the_next_shared_object() -> None:
    """A watcher that ended for any reason must not leave this process deaf: the next
    shared object gets a new bell (its waits were never rung: a hang)."""
    first = plait.Event()
    pickle.dumps(first)  # shared: this process has a bell now
    assert not first.wait(0.2)  # (long enough to park: a room is attached to the bell)
    bell = doorbell._bell
    assert bell is not None and bell.thread.is_alive()
    os.write(bell.stop_w, b"x")  # its watcher ends, as if it had died
    bell.thread.join(WAIT_S)
    assert not bell.thread.is_alive()
    ev = plait.Event()
    p = _ctx().Process(target=set_event, args=(ev,))
    p.start()
    try:
        assert ev.wait(WAIT_S), "a shared wait was never rung: the bell's watcher is dead"
    finally:
        p.join(WAIT_S)
    assert doorbell._bell is not bell and doorbell._bell is not None
    assert doorbell._bell.thread.is_alive()


def test_a_forked_child_does_not_keep_the_parents_bell_address_bound() -> None:
    """A fork copies every descriptor, close-on-exec or not. A child that kept the bell's
    listener (a ``multiprocessing.Manager`` server forked by the stdlib) kept this process's
    address bound after its bell closed: the next shared wait here failed with
    ``EADDRINUSE`` (CI's 3.13 tour run, at the shared-state scene)."""
    first = plait.Event()
    pickle.dumps(first)
    assert not first.wait(0.05)  # (parks: this process has a bell with first's room)
    bell = doorbell._bell
    assert bell is not None
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    with warnings.catch_warnings():  # (this process has threads: 3.12+ warns of fork)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child (its after-fork hooks have run): live until the parent is done
        os.close(w)
        os.write(ready_w, b"x")
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"x"  # (the child is past its after-fork hooks)
        os.close(ready_r)
        doorbell_patience = doorbell._BIND_PATIENCE
        doorbell._BIND_PATIENCE = 0.0  # (no waiting out a child: the address must be free)
        for rid in list(bell.rooms.keys()):  # every room goes: the bell closes
            doorbell._forget(bell, rid)
        assert doorbell._bell is None
        bell.thread.join(WAIT_S)
        ev = plait.Event()
        pickle.dumps(ev)
        try:
            assert not ev.wait(0.05)  # a new bell, on the same address
        finally:
            doorbell._BIND_PATIENCE = doorbell_patience
        p = _ctx().Process(target=set_event, args=(ev,))
        p.start()
        try:
            assert ev.wait(WAIT_S)
        finally:
            p.join(WAIT_S)
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def test_a_bell_waits_a_moment_for_a_just_forked_child_to_let_go_of_its_address() -> None:
    """A child forked a moment ago holds the previous bell's listener until its after-fork
    hook closes it: the next bell waits for that (a holder that never lets go gets the
    error, with a note that says what holds the address)."""
    address = f"\0plait-test-bell-{os.getpid()}-{time.monotonic_ns()}"
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(address)
    letting_go = threading.Timer(0.2, holder.close)
    letting_go.start()
    bell = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        doorbell._bind(bell, address)  # waits the 0.2 s out
    finally:
        letting_go.cancel()
        holder.close()
        bell.close()
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(address)
    bell = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    patience = doorbell._BIND_PATIENCE
    doorbell._BIND_PATIENCE = 0.05
    try:
        with pytest.raises(OSError, match="Address already in use") as info:
            doorbell._bind(bell, address)
        assert "holds this process's doorbell address" in "".join(info.value.__notes__)
    finally:
        doorbell._BIND_PATIENCE = patience
        holder.close()
        bell.close()


def test_a_room_attached_while_a_collected_rooms_finalizer_closes_the_bell_is_rung() -> None:
    """The garbage collector may run a collected room's finalizer inside ``register()`` of
    a new room (same thread, re-entrant lock). If that was the bell's last room, the bell
    closed before the new room was in it: the new room must land on a live bell, or its
    waits are never rung (CI's pure-Python run hung so: no watcher thread was left)."""
    first = plait.Event()
    pickle.dumps(first)
    assert not first.wait(0.2)  # (long enough to park: its room is attached to the bell)
    bell = doorbell._bell
    assert bell is not None and len(bell.rooms) >= 1
    real_register = doorbell._Bell.register
    calls: list[int] = []

    def register_as_if_collected_meanwhile(self: Any, room: Any) -> int:
        if not calls:  # every room so far is "collected" by the GC right here, once
            calls.append(1)
            for rid in list(self.rooms.keys()):
                doorbell._forget(self, rid)
        return real_register(self, room)

    ev = plait.Event()
    pickle.dumps(ev)
    doorbell._Bell.register = register_as_if_collected_meanwhile  # type: ignore[method-assign]
    try:
        assert not ev.wait(0.2)  # attaches ev's room: the bell closes under it
    finally:
        doorbell._Bell.register = real_register  # type: ignore[method-assign]
    assert calls == [1]
    room = ev._shared._room  # type: ignore[attr-defined]
    assert room is not None and room.bell.thread.is_alive() and room.bell is doorbell._bell
    p = _ctx().Process(target=set_event, args=(ev,))
    p.start()
    try:
        assert ev.wait(WAIT_S), "the room was left on the bell that closed under it"
    finally:
        p.join(WAIT_S)


def _announced_here(state: Any, d: int = 0) -> int:
    room = state.room
    return int(state.table[doorbell._TOTALS + room.slot * doorbell._W + doorbell._COUNT0 + d])


def _until(condition: Any, what: str) -> None:
    end = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.001)


def test_a_ring_that_came_for_a_leaving_waiter_does_not_cost_a_newer_waiter_its_turn() -> None:
    """A waiter that times out is out of the queue before it takes its announcement back
    (under the shared lock). A ring that comes in between finds nobody queued: it took
    *that* leaver's announcement, so the leaver must withdraw nothing. It withdrew one
    anyway, a newer waiter's: that waiter slept next to a free lock for good (the shared
    lock stress lost a coroutine or a thread so, about 1 run in 40 under load)."""
    lock = plait.Lock()
    pickle.dumps(lock)  # shared
    state = lock._shared  # type: ignore[attr-defined]
    room = state.room
    with state.guard:
        leaver = room.enqueue(0, lock, False)
    assert _announced_here(state) == 1
    with room.mutex:  # it timed out: out of the queue, not yet withdrawn
        assert room.queues[0].remove(leaver)
    with state.guard:  # a release rings for it meanwhile
        assert doorbell.wake(state.table, 0)
    _until(lambda: leaver not in room.announced[0], "the ring reached the room")
    with state.guard:
        newer = room.enqueue(0, lock, False)  # (announced: its turn is in the table)
        assert _announced_here(state) == 1
        room.take_back(leaver, 0)  # the leaver settles at last
        assert _announced_here(state) == 1, "the leaver took back the newer waiter's turn"
        assert doorbell.wake(state.table, 0)
    _until(lambda: newer.state == 1, "the newer waiter was rung")  # (WOKEN)
    assert room.announced[0] == set()


def test_a_ring_still_on_its_way_goes_to_the_newer_waiter_when_the_leaver_withdraws_first() -> None:
    """The other order: the leaver withdraws before the ring for it arrives (its slot
    count then holds the newer waiter's announcement, which it takes): the ring, when it
    comes, wakes the newer waiter. Either way exactly one of them is woken."""
    ev = plait.Event()
    pickle.dumps(ev)
    state = ev._shared  # type: ignore[attr-defined]
    room = state.room
    with state.guard:
        leaver = room.enqueue(0, ev, False)
    with room.mutex:
        assert room.queues[0].remove(leaver)
    with state.guard:  # (the ring may arrive before or after the take-back: both hold)
        assert doorbell.wake(state.table, 0)
        newer = room.enqueue(0, ev, False)
        room.take_back(leaver, 0)
    # Withdrawn first: the ring wakes the newer waiter. The ring first (it found nobody
    # queued: the leaver's, who then withdrew nothing): it was passed on -- to the newer
    # waiter, announced by then. Either way the newer waiter is woken, and no announcement
    # is left behind.
    _until(lambda: newer.state == 1, "the newer waiter was woken")  # (WOKEN)
    with state.guard:
        assert _announced_here(state) == 0
    assert room.announced[0] == set()


def test_a_ring_sent_through_a_closed_bells_connection_reaches_the_next_bells_room() -> None:
    """A process's bell closes when its last room goes, and its next wait on a shared
    object makes a new bell on the same address. A ringer still holds its connection to
    the old one: a ring sent through it before the old watcher had stopped went into a
    socket nobody would read, and the waiter of the new room slept on (CI's pure-Python
    run: a shared Condition's waiter was never notified, 1 round in thousands). Closing
    now shuts every connection for reading first: the ring fails over to the new bell."""
    first = plait.Event()
    pickle.dumps(first)
    fstate = first._shared  # type: ignore[attr-defined]
    froom = fstate.room
    bell = froom.bell
    with fstate.guard:  # this process rings itself: the ringer keeps a connection to it
        assert doorbell._ring(bell.tag, froom.id << 3)
    _until(lambda: len(bell.conns) == 1, "the bell accepted the ringer's connection")
    gate, stalled = threading.Event(), threading.Event()
    real_select = bell.selector.select

    def select_after_the_gate(timeout: float | None = None) -> Any:
        stalled.set()
        gate.wait(WAIT_S)
        return real_select(timeout)

    bell.selector.select = select_after_the_gate  # type: ignore[method-assign]
    try:
        with fstate.guard:  # the watcher wakes for it, then stalls before its next look
            assert doorbell._ring(bell.tag, froom.id << 3)
        _until(stalled.is_set, "the old bell's watcher stalled")
        for rid in list(bell.rooms.keys()):  # every room goes: the bell closes
            doorbell._forget(bell, rid)
        assert doorbell._bell is None
        ev = plait.Event()
        pickle.dumps(ev)
        got: list[bool] = []
        waiter = threading.Thread(target=lambda: got.append(ev.wait(WAIT_S)), daemon=True)
        waiter.start()  # (a new room, on a new bell)
        wait_parked(on=ev, count=1, timeout=WAIT_S)
        assert doorbell._bell is not None and doorbell._bell is not bell
        ev.set()  # rings through the connection to the old bell first
        waiter.join(5.0)
        assert got == [True], "the ring went into the old bell's socket: the waiter slept on"
    finally:
        gate.set()
        bell.thread.join(WAIT_S)
    assert not bell.thread.is_alive()


def _wait_then_drop_and_live_on(box: list[Any], keep: Any, where: str) -> None:
    """(A child) Wait once on the shared lock in ``box`` (it times out), let go of it,
    and live on until told to end, with a room for ``keep`` (its bell stays)."""
    import gc
    from pathlib import Path

    assert not keep.wait(0.01)  # (a room on this process's bell, kept)
    lock = box.pop()
    assert not lock.acquire(timeout=0.05)  # (a room, a slot; it left unwoken)
    Path(where, "waited").touch()
    while not Path(where, "drop").exists():
        time.sleep(0.005)
    del lock
    gc.collect()
    Path(where, "dropped").touch()
    while not Path(where, "end").exists():
        time.sleep(0.005)


def test_a_ring_for_a_room_that_a_live_process_let_go_is_handed_on(tmp_path: Any) -> None:
    """A process that waited on a shared object and then let it go lives on (a warm pool
    worker). A ring on its way to its room -- for a waiter there that timed out, or a
    count left by an everyone-ring -- reached a bell without that room, which dropped
    it: a waiter elsewhere slept next to a free lock. Letting the object go now frees the
    process's slot (and hands such a ring on)."""
    lock, keep = plait.Lock(), plait.Event()
    lock.acquire()
    box = [lock]
    child = _ctx().Process(target=_wait_then_drop_and_live_on, args=(box, keep, str(tmp_path)))
    child.start()
    try:
        _until((tmp_path / "waited").exists, "the child waited")
        state = lock._shared  # type: ignore[attr-defined]
        with state.guard:  # a count on the child's slot that no waiter there will take
            theirs = [
                i for i in range(doorbell.SLOTS)
                if state.table[doorbell._TOTALS + i * doorbell._W + doorbell._TAG]
            ]  # fmt: skip
            assert len(theirs) == 1
            at = doorbell._TOTALS + theirs[0] * doorbell._W
            state.table[at + doorbell._COUNT0] += 1
            state.table[0] += 1
        (tmp_path / "drop").touch()
        _until((tmp_path / "dropped").exists, "the child let the lock go")
        got: list[bool] = []
        waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=10)))
        waiter.start()
        wait_parked(on=lock, count=1, timeout=WAIT_S)
        lock.release()  # rings the child's slot first (the next slot to ring is the first)
        waiter.join(5.0)
        assert got == [True], "the ring went to a room the child had let go"
        lock.release()
    finally:
        (tmp_path / "end").touch()
        child.join(WAIT_S)


@pytest.mark.parametrize(("unsure", "hand_on"), [(True, True), (False, True), (True, False)])
def test_a_retired_room_that_may_have_lost_a_ring_has_everyone_else_look_again(
    unsure: bool, hand_on: bool
) -> None:
    """A room let go of while a ring may be on its way to it for nobody (one of its
    waiters left unwoken) makes every other waiter look again -- unless a ring is a
    notification (a Condition's), which a leaver may consume, as in threading."""
    lock = plait.Lock()
    state, room = _a_room_that_may_owe_a_ring(lock)
    ours = room.slot
    with state.guard:
        other = (ours + 1) % doorbell.SLOTS  # another process's waiter (a dead one here:
        at = doorbell._TOTALS + other * doorbell._W  # its ring fails, its slot is cleared)
        state.table[at + doorbell._TAG] = doorbell._tag_of(2**22 + 1, 1)
        state.table[at + doorbell._ROOM] = 1
        state.table[at + doorbell._COUNT0] = 1
        state.table[0] += 1
    room.unsure = unsure
    room.retire(hand_on)
    assert room.slot == -1
    assert state.table[doorbell._TOTALS + ours * doorbell._W + doorbell._TAG] == 0
    looked_again = state.table[at + doorbell._TAG] == 0
    assert looked_again == (unsure and hand_on)
    with state.guard:
        doorbell._clear_slot(state.table, at)


def _a_room_that_may_owe_a_ring(lock: Any) -> tuple[Any, doorbell.Room]:
    """``lock`` shared, with this process's room for it in its slot, unsure: a waiter here
    announced itself, then left unwoken."""
    pickle.dumps(lock)
    state = lock._shared
    room = state.room
    with state.guard:
        room.enqueue(0, lock, False)
    with room.mutex:
        waiter = room.queues[0].pop()
    assert waiter is not None
    with state.guard:
        room.take_back(waiter, 0)
    room.unsure = True
    return state, room


def test_letting_a_shared_object_go_never_blocks_on_the_bell_or_the_object() -> None:
    """A finalizer runs on whichever thread the collector interrupts, which may hold any
    lock (and at exit, a frozen daemon thread may hold one for good): letting a shared
    object go only hands its room to the bell's watcher, which retires it once the locks
    it needs are free."""
    lock = plait.Lock()
    state, room = _a_room_that_may_owe_a_ring(lock)
    ours = doorbell._TOTALS + room.slot * doorbell._W
    assert state.table[ours + doorbell._TAG]
    bell = room.bell
    guard, table = state.guard, state.table
    guard.acquire()  # the watcher's retirement waits for the object's lock
    try:
        with bell.watch_lock, doorbell._bell_lock:
            dropped = threading.Thread(target=state.__del__)
            dropped.start()
            dropped.join(WAIT_S)
            assert not dropped.is_alive(), "letting the object go waited for a lock"
            assert table[ours + doorbell._TAG], "retired before its lock was free"
    finally:
        guard.release()
    _until(lambda: not table[ours + doorbell._TAG], "the watcher retired the room")
    assert room.slot == -1


def test_nothing_is_retired_while_the_interpreter_is_finalizing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At interpreter exit daemon threads freeze where they stand, the bell's watcher
    among them, perhaps inside a lock: an object collected then (its room unsure) made
    the tour's process hang at exit. Nothing is retired then: the process is ending, and
    its slot goes with it."""
    lock = plait.Lock()
    state, room = _a_room_that_may_owe_a_ring(lock)
    monkeypatch.setattr(doorbell.sys, "is_finalizing", lambda: True)
    doorbell.retire_later(state, room, hand_on=True)
    assert room.bell.retiring.empty() and not room.bell.retire_asked
    monkeypatch.undo()
    doorbell.retire_later(state, room, hand_on=True)  # (not finalizing: it is retired)
    _until(lambda: room.slot == -1, "the watcher retired the room")
