"""Shared queues after crashes: a SIGKILLed owner leaves nothing in /dev/shm once nobody
uses its queue, and a live process's queue is never removed under it."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import sys
import threading
from typing import Any

import psutil

from plait._channels import Queue
from plait._ipc import shm
from plait._ipc.context import get_context


def _ctx() -> Any:
    return get_context()  # (typed Any: a BaseContext has no Process in the stubs)


BIG = 3 * 1024 * 1024  # over transport.SPILL: travels in a segment of its own


def _names(prefix: str) -> set[str]:
    return {n for n in os.listdir(shm.SHM_DIR) if prefix in n}


def hold_until_killed(q: Queue[Any], conn: Any) -> None:
    conn.send(("holding", os.getpid()))
    threading.Event().wait()  # the test kills us


def owner(conn: Any) -> None:
    """Promote a queue, have a child of ours hold it, fill it (one big item), then wait."""
    q: Queue[Any] = Queue()
    ctx = _ctx()
    mine, theirs = ctx.Pipe()
    holder = ctx.Process(target=hold_until_killed, args=(q, theirs))  # promotes q here
    holder.start()
    _tag, holder_pid = mine.recv()
    q.put(b"B" * BIG)
    for i in range(10):
        q.put(i)
    conn.send((q._shared.prefix, holder_pid))
    conn.recv()  # never comes


def owner_shares(conn: Any) -> None:
    """Promote a queue by sending it to the parent, fill it (one big item), then wait."""
    q: Queue[Any] = Queue()
    q.put(b"B" * BIG)
    for i in range(10):
        q.put(i)
    conn.send(q)
    conn.recv()  # never comes


def _kill_and_wait(pid: int) -> None:
    """Kill a process that is not our child and wait until it is dead (a zombie is dead:
    it holds nothing any more)."""
    proc = psutil.Process(pid)
    proc.kill()
    for _ in range(1000):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return
            proc.wait(0.01)
            return
        except psutil.TimeoutExpired:
            continue
        except psutil.NoSuchProcess:
            return
    raise AssertionError(f"pid {pid} outlived SIGKILL")


def test_sigkilled_owner_and_holder_leave_nothing_after_the_next_promotion() -> None:
    ctx = _ctx()
    mine, theirs = ctx.Pipe()
    p = ctx.Process(target=owner, args=(theirs,))
    p.start()
    mine_live: Queue[Any] = Queue()
    pickle.dumps(mine_live)  # a live queue of this process: never touched by a sweep
    mine_live.put("still here")
    live_prefix = mine_live._shared.prefix
    live_names = _names(live_prefix)
    try:
        prefix, holder_pid = mine.recv()
        names = _names(prefix)
        assert any(n.endswith("_ring") for n in names)
        assert not any(n.startswith("sem.") for n in names)  # one segment: lock and waits inside
        assert any(n.startswith(prefix + str(p.pid) + "_") for n in names)  # the big item
        _, _, owner_pid, _ = shm.owner_of(prefix)  # type: ignore[misc]
        assert owner_pid == p.pid

        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        # The owner is dead, but its child still holds the queue: nothing is removed.
        assert prefix not in "".join(shm.sweep_dead("ring"))
        assert _names(prefix) == names

        _kill_and_wait(holder_pid)  # now nobody uses it
        pickle.dumps(Queue())  # the next promotion sweeps
        assert _names(prefix) == set()
        assert _names(live_prefix) == live_names
        assert mine_live.get(timeout=5) == "still here"
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)
        mine.close()
        theirs.close()


def test_survivor_keeps_a_dead_owners_queue_and_removes_it_when_done() -> None:
    ctx = _ctx()
    mine, theirs = ctx.Pipe()
    p = ctx.Process(target=owner_shares, args=(theirs,))
    p.start()
    try:
        q = mine.recv()
        prefix = q._shared.prefix
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        shm.sweep_dead("ring")  # we still hold it: a sweep leaves it alone
        assert q.get(timeout=5) == b"B" * BIG  # the dead owner's big item is still there
        assert [q.get(timeout=5) for _ in range(10)] == list(range(10))
        q.put(bytearray(BIG))  # a big item of ours, left unread
        q.put("small")
        assert any(n.startswith(prefix + str(os.getpid()) + "_") for n in _names(prefix))
        del q
        gc.collect()  # we were the last holder: everything goes
        assert _names(prefix) == set()
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)
        mine.close()
        theirs.close()


def test_a_queue_let_go_of_here_goes_once_its_other_holders_are_killed() -> None:
    q: Queue[Any] = Queue()
    ctx = _ctx()
    mine, theirs = ctx.Pipe()
    p = ctx.Process(target=hold_until_killed, args=(q, theirs))
    p.start()
    try:
        assert mine.recv()[0] == "holding"
        q.put(bytes(BIG))
        prefix = q._shared.prefix
        del q
        gc.collect()  # we let go; the child still holds it: nothing removed
        assert any(n.endswith("_ring") for n in _names(prefix))
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        pickle.dumps(Queue())  # the next promotion here retries what we let go of
        assert _names(prefix) == set()
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)
        mine.close()
        theirs.close()


def test_exit_hook_removes_what_this_process_let_go_last() -> None:
    q: Queue[Any] = Queue()
    pickle.dumps(q)
    q.put(bytes(BIG))
    q.put("small")
    prefix = q._shared.prefix
    assert len(_names(prefix)) == 2  # the ring (with its lock and wait table), the big item
    shm.exit_hook()  # what runs at exit: lets go of every queue still attached
    assert _names(prefix) == set()
    assert q.qsize() == 2  # (the mapping stays usable to the end)


def test_owner_tags_tell_a_reused_pid_from_its_owner() -> None:
    prefix = shm.new_prefix("q")
    owner = shm.owner_of(prefix + "ring")
    assert owner is not None
    _, fam, pid, start = owner
    assert pid == os.getpid() and str(fam) == os.environ[shm.FAMILY_ENV]
    assert shm.owner_alive(pid, start)
    assert not shm.owner_alive(pid, start + 1)  # the same pid, started later: a reuse
    assert shm.owner_of("sem." + prefix + "lock") == owner
    assert shm.owner_of("plait_sync_lk_123_0a1b_0") is None  # not owner-tagged


def own_alone_until_killed(conn: Any) -> None:
    q: Queue[Any] = Queue()
    pickle.dumps(q)  # promoted here; no other process attaches
    q.put(b"x" * (3 * 1024 * 1024))  # a big item in a segment of its own, too
    conn.send(q._shared.prefix)
    threading.Event().wait(60)


def test_the_next_plait_program_sweeps_what_a_killed_owner_left_at_start() -> None:
    mine, theirs = _ctx().Pipe()
    p = _ctx().Process(target=own_alone_until_killed, args=(theirs,))
    p.start()
    prefix = mine.recv()
    assert len(_names(prefix)) == 2
    _kill_and_wait(p.pid)
    assert len(_names(prefix)) == 2  # nobody let go of them
    env = {k: v for k, v in os.environ.items() if k != shm.FAMILY_ENV}  # a new program
    done = subprocess.run(
        [sys.executable, "-c", "import plait"],
        check=False,
        env=env,
        timeout=60,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    assert _names(prefix) == set()
