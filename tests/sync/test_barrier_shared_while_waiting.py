"""A Barrier shared (pickled to a process) while parties of this process wait on it (issue 18).

Those parties were parked on the barrier's local condition, which nothing in another
process can notify: they stayed parked until their own timeout, then broke the barrier.
Now the promotion wakes them and they go on waiting on the shared state, counted in.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from typing import Any

import _xproc_children as kids
import pytest

import plait
from plait._ipc.context import get_context
from plait.testing import wait_parked

LOCAL_TIMEOUT = 20.0  # a local party's own timeout: the test fails long before it
FAST_S = 8.0  # the whole round must end well inside LOCAL_TIMEOUT


def _thread_party(barrier: Any, results: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(barrier.wait(LOCAL_TIMEOUT))
        except BaseException as exc:  # (reported, never lost)
            results.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _coroutine_party(barrier: Any, results: list[Any]) -> threading.Thread:
    async def main() -> Any:
        return await barrier.async_wait(LOCAL_TIMEOUT)

    def run() -> None:
        try:
            results.append(asyncio.run(main()))
        except BaseException as exc:
            results.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _process_party(barrier: Any) -> Any:
    p = get_context().Process(target=kids.barrier_wait, args=(barrier, 30))
    p.start()
    return p


def _end(threads: list[threading.Thread], procs: list[Any]) -> None:
    for t in threads:
        t.join(LOCAL_TIMEOUT + 5)
    for p in procs:
        p.join(30)
        if p.exitcode is None:
            p.kill()
            p.join(5)


def test_a_thread_and_a_coroutine_waiting_here_meet_a_process_party() -> None:
    barrier = plait.Barrier(3)
    results: list[Any] = []
    threads = [_thread_party(barrier, results), _coroutine_party(barrier, results)]
    procs: list[Any] = []
    try:
        wait_parked(on=barrier, count=2)
        started = time.monotonic()
        procs.append(_process_party(barrier))  # shares it; the third party trips it there
        _end(threads, procs)
        elapsed = time.monotonic() - started
        assert elapsed < FAST_S, f"the local parties waited {elapsed:.1f} s: {results}"
        assert procs[0].exitcode in (10, 11, 12), procs[0].exitcode
        assert sorted([*results, procs[0].exitcode - 10]) == [0, 1, 2], results
        assert barrier.n_waiting == 0 and not barrier.broken
        # The moved parties left the shared count: a second round needs three again.
        results.clear()
        threads = [_thread_party(barrier, results), _coroutine_party(barrier, results)]
        wait_parked(on=barrier, count=2)
        procs.append(_process_party(barrier))
        _end(threads, procs)
        assert procs[1].exitcode in (10, 11, 12), procs[1].exitcode
        assert sorted([*results, procs[1].exitcode - 10]) == [0, 1, 2], results
        assert barrier.n_waiting == 0 and not barrier.broken
    finally:
        barrier.abort()  # (a failed test leaves no party waiting)
        _end(threads, procs)


@pytest.mark.parametrize("party", [_thread_party, _coroutine_party])
def test_a_party_waiting_here_is_tripped_by_a_wait_after_the_sharing(party: Any) -> None:
    barrier = plait.Barrier(2)
    results: list[Any] = []
    threads = [party(barrier, results)]
    try:
        wait_parked(on=barrier, count=1)
        pickle.dumps(barrier)
        started = time.monotonic()
        mine = barrier.wait(LOCAL_TIMEOUT)  # a shared wait now: it trips the barrier
        _end(threads, [])
        assert time.monotonic() - started < FAST_S, results
        assert sorted([*results, mine]) == [0, 1], results
        assert barrier.n_waiting == 0 and not barrier.broken
    finally:
        barrier.abort()
        _end(threads, [])


@pytest.mark.parametrize("run", range(30))
def test_a_trip_and_a_sharing_at_the_same_moment(run: int) -> None:
    """The last party trips the barrier and shares it at once: the woken party may find
    it shared before it left the round it passed (it must pass, not break it)."""
    barrier = plait.Barrier(2)
    results: list[Any] = []
    threads = [(_thread_party if run % 2 else _coroutine_party)(barrier, results)]
    try:
        wait_parked(on=barrier, count=1)
        mine = barrier.wait(LOCAL_TIMEOUT)
        pickle.dumps(barrier)
        _end(threads, [])
        assert sorted([*results, mine]) == [0, 1], results
        # Every party left: a new round of two trips (and not at once, with one).
        threads = [_thread_party(barrier, results)]
        wait_parked(on=barrier, count=1)
        barrier.wait(LOCAL_TIMEOUT)
        _end(threads, [])
        assert len(results) == 2 and isinstance(results[1], int), results
        assert barrier.n_waiting == 0 and not barrier.broken
    finally:
        barrier.abort()
        _end(threads, [])


def test_a_party_cancelled_after_the_sharing_leaves_the_shared_count() -> None:
    barrier = plait.Barrier(2)
    outcome: list[Any] = []
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"] = asyncio.get_running_loop()
        box["task"] = asyncio.current_task()
        ready.set()
        try:
            await barrier.async_wait(LOCAL_TIMEOUT)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    t = threading.Thread(target=lambda: outcome.append(_run_quietly(main)), daemon=True)
    t.start()
    try:
        assert ready.wait(10)
        wait_parked(on=barrier, count=1)
        pickle.dumps(barrier)
        box["loop"].call_soon_threadsafe(box["task"].cancel)
        t.join(10)
        assert outcome[:1] == ["cancelled"], outcome
        assert barrier.n_waiting == 0 and not barrier.broken
        # Its place is free again: two new parties trip it.
        results: list[Any] = []
        threads = [_thread_party(barrier, results)]
        wait_parked(on=barrier, count=1)
        mine = barrier.wait(LOCAL_TIMEOUT)
        _end(threads, [])
        assert sorted([*results, mine]) == [0, 1], results
    finally:
        barrier.abort()
        t.join(LOCAL_TIMEOUT + 5)


def _run_quietly(main: Any) -> str:
    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        return "ended"
    return "returned"
