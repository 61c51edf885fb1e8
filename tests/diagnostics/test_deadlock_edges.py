"""More of the wait-for graph: semaphore holders, strand results, condition re-takes, and
Go's rule (every thread asleep) for waits anyone could end -- queues, barriers, events."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import plait
from plait.testing import wait_parked

pytestmark = [pytest.mark.timeout(30), pytest.mark.filterwarnings("ignore::plait.LockOrderWarning")]

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture
def debug_mode() -> Iterator[None]:
    was = plait.debug(True)
    try:
        yield
    finally:
        plait.debug(was)


def _python(program: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROGRAMS / program), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _report(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "plait.DeadlockError: deadlock: every thread of this process waits" in done.stderr
    return done.stderr[done.stderr.index("plait.DeadlockError") :]


# -- Go's rule: every thread asleep (run as programs: the test runner's own threads and
#    signal handlers would keep it from ever holding in here) ---------------------------


def test_a_get_whose_only_producer_has_ended_raises() -> None:
    report = _report(_python("asleep_queue.py"))
    assert "thread 'MainThread'" in report and "plait.Queue 'q'" in report
    assert "asleep_queue.py:10" in report


def test_a_put_whose_only_consumer_joins_the_producer_raises() -> None:
    report = _report(_python("asleep_bounded_join.py"))
    assert "the end of thread 'producer'" in report
    assert "plait.Queue 'q'" in report and "asleep_bounded_join.py:10 (produce)" in report


def test_a_barrier_no_more_parties_can_reach_raises() -> None:
    report = _report(_python("asleep_barrier.py"))
    assert report.count("plait.Barrier") == 2
    assert "'party-0'" in report and "'party-1'" in report


def test_the_seed_lock_cycle_taken_on_fast_paths_raises_in_the_closing_wait() -> None:
    done = _python("asleep_seed_lock.py")
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.count("plait.DeadlockError: deadlock: these strands wait") == 1
    report = done.stderr[done.stderr.index("plait.DeadlockError") :]
    assert "plait.Lock 'mutexA'" in report and "plait.Lock 'mutexB'" in report
    assert "thread 'one'" in report and "thread 'two'" in report


@pytest.mark.parametrize("program", ["asleep_signal_handler.py", "asleep_event_set_later.py"])
def test_a_wait_something_else_can_still_end_is_never_reported(program: str) -> None:
    done = _python(program)
    assert done.returncode == 0, done.stderr
    assert "DeadlockError" not in done.stderr


# -- edges, in this process ------------------------------------------------------------


class Sides:
    """Run each side in a daemon thread; collect what each raised."""

    def __init__(self) -> None:
        self.errors: dict[str, BaseException] = {}
        self.done: set[str] = set()
        self.threads: list[plait.Thread] = []

    def start(self, name: str, fn: Callable[[], Any]) -> None:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # recorded for the test to assert
                self.errors[name] = exc
            else:
                self.done.add(name)

        t = plait.Thread(target=body, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(10)
            assert not t.is_alive(), f"{t.name} is still blocked: the deadlock was not broken"


def _deadlock_in(sides: Sides) -> plait.DeadlockError:
    """The one DeadlockError raised (what a side raised after it, as a plain Lock released
    by a strand that did not take it, may follow)."""
    found = []
    for error in sides.errors.values():
        seen: BaseException | None = error
        while seen is not None and not isinstance(seen, plait.DeadlockError):
            seen = seen.__context__
        if seen is not None:
            found.append(seen)
    assert len(found) == 1, sides.errors
    return found[0]


@pytest.mark.parametrize("kind", [plait.Semaphore, plait.BoundedSemaphore])
def test_a_semaphore_points_to_its_holder(debug_mode: None, kind: Callable[[int], Any]) -> None:
    pool, lock = kind(1), plait.RLock()
    holding = threading.Barrier(2, timeout=10)
    sides = Sides()

    def holder() -> None:
        with pool:
            holding.wait()
            wait_parked(on=pool, count=1)
            with lock:  # closes the cycle: the other side holds `lock` and waits on `pool`
                pass

    def other() -> None:
        with lock:
            holding.wait()
            with pool:
                pass

    sides.start("holder", holder)
    sides.start("other", other)
    sides.join()
    error = _deadlock_in(sides)
    assert "holder" in sides.errors and sides.done == {"other"}
    text = str(error)
    assert f"plait.{kind.__name__} 'pool'" in text and "held by thread 'holder'" in text


def test_a_semaphore_with_one_holder_still_running_is_no_deadlock(debug_mode: None) -> None:
    pool, lock = plait.Semaphore(2), plait.RLock()
    stuck_holds, free_holds, release = threading.Event(), threading.Event(), threading.Event()
    sides = Sides()

    def stuck() -> None:
        with pool:
            stuck_holds.set()
            with lock:
                pass

    def free() -> None:  # holds the other permit, runs on, then gives it back
        with pool:
            free_holds.set()
            assert release.wait(10)

    with lock:
        sides.start("free", free)
        assert free_holds.wait(10)
        sides.start("stuck", stuck)
        assert stuck_holds.wait(10)
        wait_parked(on=lock, count=1)
        sides.start("waiter", lambda: pool.acquire() and pool.release())
        wait_parked(on=pool, count=1)  # parked, not raised: `free` may still release
        release.set()
    sides.join()
    assert not sides.errors and sides.done == {"free", "stuck", "waiter"}


def test_a_thread_waiting_for_a_coroutines_end_that_waits_on_it(debug_mode: None) -> None:
    lock = plait.Lock()
    box: list[Any] = []
    spawned = threading.Event()
    sides = Sides()

    async def coro() -> None:
        async with lock:
            pass

    async def loop_side() -> None:
        async with plait.TaskGroup() as tg:
            box.append(tg.spawn(coro, name="coro"))
            spawned.set()

    def thread_side() -> None:
        with lock:
            sides.start("loop", lambda: asyncio.run(loop_side()))
            assert spawned.wait(10)
            wait_parked(on=lock, count=1)
            box[0].wait()  # the coroutine waits for `lock`, which this thread holds

    sides.start("thread", thread_side)
    sides.join()
    error = _deadlock_in(sides)
    text = str(error)
    assert "thread 'thread'" in text and "plait.Lock 'lock'" in text
    assert "the end of async 'coro'" in text
    assert sides.done == {"loop"}


def _condition_relock_cycle() -> plait.DeadlockError:
    cond, other = plait.Condition(plait.Lock()), plait.RLock()
    waiting = threading.Event()
    sides = Sides()

    def one() -> None:  # holds `other`, waits on the condition, must re-take its lock
        with other, cond:
            waiting.set()
            cond.wait()

    def two() -> None:  # takes the condition's lock, notifies, then wants `other`
        assert waiting.wait(10)
        wait_parked(on=cond, count=1)
        with cond:
            cond.notify()
            other.acquire()
            other.release()

    sides.start("one", one)
    sides.start("two", two)
    sides.join()
    return _deadlock_in(sides)


def test_a_condition_over_a_plain_lock_relock_cycle_in_debug_mode(debug_mode: None) -> None:
    assert "Lock" in str(_condition_relock_cycle())


def test_a_condition_over_a_plain_lock_relock_cycle_by_default() -> None:
    assert not plait.debug()
    assert "Lock" in str(_condition_relock_cycle())


# -- across processes ----------------------------------------------------------------


def test_a_cycle_across_two_processes_is_reported_within_a_second() -> None:
    # The parent gives up after 5 s (a timed wait is never part of a report); the child's
    # untimed wait closes the cycle and must be reported within a second of that.
    done = subprocess.run(
        [sys.executable, str(PROGRAMS / "xproc_deadlock.py"), "5.0"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "parent gave up" in done.stdout and "child got both" in done.stdout
    reports = [line for line in done.stderr.splitlines() if "deadlock across processes" in line]
    assert len(reports) == 1, done.stderr
    report = reports[0]
    assert "plait.Lock 'mutexA'" in report and ":16 (fun2)" in report
    after = float(re.search(r"Reported ([0-9.]+) s after", report).group(1))  # type: ignore[union-attr]
    assert after < 1.0, report
    assert "Traceback" not in done.stderr


def _run_cross_process_cycle(
    program: str, debug: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a two-process cycle program; check the child raised and the parent went on.

    Returns the run and the report's two strand lines (child's wait first)."""
    done = subprocess.run(
        [sys.executable, str(PROGRAMS / program)],
        env={**os.environ, "PLAIT_DEBUG": debug},
        capture_output=True,
        text=True,
        timeout=40,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "child raised: deadlock across processes" in out, out + done.stderr
    assert "links: 2" in out and "parent got both" in out
    lines = [line for line in out.splitlines() if line.startswith("  thread ")]
    assert len(lines) == 2, out
    return done, lines


@pytest.mark.parametrize("debug", ["0", "1"])
def test_a_cycle_across_two_processes_raises_in_the_wait_that_closes_it(debug: str) -> None:
    # Both waits untimed; the parent parks first (its thread tells the child), so the
    # child's wait closes the cycle: it gets DeadlockError naming both processes' strands,
    # both locks and both lines (and, in debug mode, where each lock was taken), and the
    # parent then takes both.
    done, lines = _run_cross_process_cycle("xproc_deadlock_raise.py", debug)
    out = done.stdout
    assert "child got both" not in out
    assert "plait.Lock 'mutexA' at " in lines[0] and ":19 (fun2)" in lines[0]
    assert "plait.Lock 'mutexB' at " in lines[1] and "xproc_deadlock_raise.py:39" in lines[1]
    assert "held by thread 'MainThread'" in lines[0] and "held by thread 'MainThread'" in lines[1]
    if debug == "1":
        assert "(taken at " in lines[0] and "xproc_deadlock_raise.py:36" in lines[0]
        assert ":15 (fun2))" in lines[1]
    else:
        assert "taken at" not in out
    assert "deadlock across processes" not in done.stderr  # raised, so not reported too
    assert "Traceback" not in done.stderr


def test_a_cycle_across_two_processes_through_a_shared_semaphore_raises_in_debug_mode() -> None:
    # The parent holds the only permit and waits for the child's lock; the child's wait for
    # a permit closes the cycle. A semaphore's holder strands are known in debug mode.
    done, lines = _run_cross_process_cycle("xproc_sem_deadlock.py", "1")
    assert "plait.Semaphore 'pool' at " in lines[0] and ":19 (child_side)" in lines[0]
    assert "held by thread 'MainThread'" in lines[0]
    assert "plait.Lock 'gate' at " in lines[1] and "xproc_sem_deadlock.py:39" in lines[1]
    assert "(taken at " in lines[1] and ":15 (child_side))" in lines[1]
    assert "Traceback" not in done.stderr


def test_two_processes_closing_one_cycle_at_the_same_moment_raise_once(tmp_path: Path) -> None:
    # A test hook holds each side's check until the other's has started too, so each walk
    # passes a strand still checking: only the one with the smaller key raises; the other
    # walks again after it and then takes both locks (both raised before the fix).
    done = _python("xproc_deadlock_same_moment.py", str(tmp_path), timeout=40)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "never met" not in out, out
    raised = [line for line in out.splitlines() if "raised, links: 2" in line]
    got = [line for line in out.splitlines() if line.endswith("got both")]
    assert len(raised) == 1 and len(got) == 1, out + done.stderr
    assert raised[0].split()[0] != got[0].split()[0], out
    assert "Traceback" not in done.stderr, done.stderr


def test_a_strand_cancelled_while_it_lets_a_rival_close_the_cycle_first_ends_at_once(
    tmp_path: Path,
) -> None:
    # Of two processes closing one cycle at once, the one with the larger key defers to the
    # other; its cancel scope is cancelled as it defers, while the other holds its verdict
    # back until it has seen the cancellation: the deferral must be a park that the scope's
    # cancel() ends (a plain sleep loop kept deferring, then raised DeadlockError too).
    done = _python("xproc_deadlock_cancel_while_deferring.py", str(tmp_path), timeout=40)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "never met" not in out and "still deferring" not in out, out
    lines = out.splitlines()
    cancelled = [line.split()[0] for line in lines if line.endswith(" cancelled")]
    assert len(cancelled) == 1, out + done.stderr
    other = [line for line in lines if not line.startswith(cancelled[0])]
    assert len(other) == 1, out  # it raised, or took both once the cancelled side let go
    assert "raised, links: 2" in other[0] or other[0].endswith("got both"), out
    assert "Traceback" not in done.stderr, done.stderr
