"""Process strands on warm workers (issue 12, point 3): reuse, and every guarantee kept.

``spawn(f, on="process")`` borrows a warm worker (``plait.pool._warm``); a worker is never
given to another strand after its strand was cancelled, killed or exited, and
``isolated=True`` still gets a process of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import strandhelpers as h

import plait
from plait import WorkerCrashed

HERE = Path(__file__).parent


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process ``pid`` is gone (or a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_two_strands_in_turn_reuse_one_warm_worker() -> None:
    with plait.TaskGroup() as tg:
        first = tg.spawn(h.pid, on="process")
    with plait.TaskGroup() as tg:
        second = tg.spawn(h.pid, on="process")
    assert first.result() == second.result() == first.pid == second.pid
    assert first.result() != os.getpid()


def test_strands_running_at_once_get_workers_of_their_own() -> None:
    q = plait.Queue()
    ev = plait.Event()
    with plait.TaskGroup() as tg:
        a = tg.spawn(h.report_then_wait, q, ev, on="process")
        b = tg.spawn(h.report_then_wait, q, ev, on="process")
        started = {q.get(timeout=20), q.get(timeout=20)}
        ev.set()
    assert a.result() != b.result()
    assert started == {("started", a.pid), ("started", b.pid)}


def test_cancel_kills_only_that_strands_worker_and_runs_its_finally(tmp_path: Path) -> None:
    q = plait.Queue()
    stop_a = plait.Event()
    go_b = plait.Event()
    with plait.TaskGroup() as tg:
        a = tg.spawn(h.report_then_wait, q, stop_a, str(tmp_path), on="process")
        b = tg.spawn(h.report_then_wait, q, go_b, str(tmp_path), on="process")
        assert {q.get(timeout=20), q.get(timeout=20)} == {
            ("started", a.pid),
            ("started", b.pid),
        }
        a.cancel()
        assert a.wait(20)
        assert _gone(a.pid), "the cancelled strand's worker was not killed"
        assert (tmp_path / f"finally-{a.pid}").exists()  # Cancelled reached the strand
        assert _alive(b.pid), "cancelling one strand killed another strand's worker"
        go_b.set()
        assert b.result(timeout=20) == b.pid
        assert (tmp_path / f"finally-{b.pid}").exists()
    assert a.cancelled()
    with plait.TaskGroup() as tg:
        after = tg.spawn(h.pid, on="process")
    assert after.result() != a.pid  # the cancelled worker was replaced, never reused
    assert after.result() == b.pid  # the other one is warm and reused


def test_a_deadline_reaches_a_warm_strand() -> None:
    q = plait.Queue()
    with plait.move_on_after(0.5) as scope, plait.TaskGroup() as tg:
        t = tg.spawn(h.report_then_sleep, q, on="process")
    assert scope.cancelled_caught
    assert t.cancelled()
    assert _gone(t.pid)


def test_a_timeout_fails_the_strand_and_retires_its_worker() -> None:
    q = plait.Queue()
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        t = tg.spawn(h.report_then_sleep, q, on="process", timeout=0.5)
    (error,) = info.value.exceptions
    assert isinstance(error, TimeoutError)
    assert _gone(t.pid)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_killed_worker_reports_its_signal(sig: int) -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        t = tg.spawn(h.kill_self, sig, on="process")
    (error,) = info.value.exceptions
    assert isinstance(error, WorkerCrashed)
    assert error.pid == t.pid
    assert error.exitcode == -sig
    assert error.signal == sig
    with plait.TaskGroup() as tg:
        after = tg.spawn(h.pid, on="process")
    assert after.result() != t.pid


def test_an_exit_code_is_reported() -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        t = tg.spawn(h.exit_now, 7, on="process")
    (error,) = info.value.exceptions
    assert isinstance(error, WorkerCrashed)
    assert (error.pid, error.exitcode, error.signal) == (t.pid, 7, None)


def test_sys_exit_is_reported_and_the_worker_is_not_reused() -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        t = tg.spawn(h.sys_exit, 5, on="process")
    (error,) = info.value.exceptions
    assert isinstance(error, WorkerCrashed)
    assert error.exitcode == 5
    assert _gone(t.pid)
    with plait.TaskGroup() as tg:
        after = tg.spawn(h.pid, on="process")
    assert after.result() != t.pid


def test_an_exception_comes_back_with_its_remote_traceback_and_the_worker_stays() -> None:
    with pytest.raises(BaseExceptionGroup) as info, plait.TaskGroup() as tg:
        t = tg.spawn(h.raise_value_error, on="process")
    (error,) = info.value.exceptions
    assert isinstance(error, ValueError)
    assert "raised in a warm worker" in str(error)
    assert "raise_value_error" in str(error.__cause__)
    with plait.TaskGroup() as tg:
        after = tg.spawn(h.pid, on="process")
    assert after.result() == t.pid  # an exception does not cost the worker


def test_a_strand_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    q = plait.Queue()
    with plait.TaskGroup(grace=0.3) as tg:
        t = tg.spawn(h.ignore_sigterm_forever, q, on="process")
        assert q.get(timeout=20) == ("started", t.pid)
        t.cancel()
    assert t.cancelled()
    assert _gone(t.pid)


def test_isolated_gets_a_fresh_process_each_time() -> None:
    with plait.TaskGroup() as tg:
        warm = tg.spawn(h.pid, on="process")
    with plait.TaskGroup() as tg:
        one = tg.spawn(h.pid, on="process", isolated=True)
    with plait.TaskGroup() as tg:
        two = tg.spawn(h.pid, on="process", isolated=True)
    pids = {warm.result(), one.result(), two.result()}
    assert len(pids) == 3
    assert one.pid == one.result() and two.pid == two.result()


def test_isolated_on_a_thread_strand_is_refused() -> None:
    with plait.TaskGroup() as tg, pytest.raises(ValueError, match="isolated=True"):
        tg.spawn(h.pid, on="thread", isolated=True)


def test_state_left_in_a_worker_is_seen_by_the_next_strand_on_it() -> None:
    """Documented: a warm worker keeps its module globals between strands;
    ``isolated=True`` starts from a clean process."""
    with plait.TaskGroup() as tg:
        setter = tg.spawn(h.set_state, "left behind", on="process")
    with plait.TaskGroup() as tg:
        getter = tg.spawn(h.get_state, on="process")
    with plait.TaskGroup() as tg:
        clean = tg.spawn(h.get_state, on="process", isolated=True)
    assert getter.result() == ("left behind", setter.result())
    assert clean.result()[0] is None


def test_a_warm_worker_dies_with_its_parent() -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        import plait, strandhelpers

        if __name__ == "__main__":
            q = plait.Queue()
            with plait.TaskGroup() as tg:
                tg.spawn(strandhelpers.report_then_sleep, q, on="process")
                print(q.get(timeout=30)[1], flush=True)
                time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.kill()
        parent.wait(10)
        assert _gone(worker), f"warm worker {worker} outlived its parent"
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_an_idle_worker_is_stopped_and_the_next_strand_starts_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plait.pool import _warm

    monkeypatch.setattr(_warm, "IDLE_SECONDS", 0.2)
    with plait.TaskGroup() as tg:
        first = tg.spawn(h.pid, on="process")
    assert _gone(first.pid), "an idle warm worker was never stopped"
    with plait.TaskGroup() as tg:
        second = tg.spawn(h.pid, on="process")
    assert second.result() != first.result()


def test_a_coroutine_awaits_a_warm_process_strand() -> None:
    async def main() -> tuple[int, int, int, int]:
        async with plait.TaskGroup() as tg:
            first = tg.spawn(h.pid, on="process")
            got_first = await first
            second = tg.spawn(h.pid, on="process")
            got_second = await second
        return got_first, first.pid, got_second, second.pid

    got_first, first_pid, got_second, second_pid = plait.run(main)
    assert got_first == first_pid == got_second == second_pid


def test_an_argument_only_a_new_process_can_inherit_gets_a_process_of_its_own() -> None:
    import multiprocessing

    value = multiprocessing.get_context("forkserver").Value("i", 0)
    with plait.TaskGroup() as tg:
        warm = tg.spawn(h.pid, on="process")
    with plait.TaskGroup() as tg:
        own = tg.spawn(h.bump, value, on="process")
    assert value.value == 1
    assert own.result() == own.pid != warm.result()


def test_an_unpicklable_argument_fails_at_the_spawn_naming_it() -> None:
    import threading

    with plait.TaskGroup() as tg, pytest.raises(plait.SerializationError, match="lock"):
        tg.spawn(h.set_state, threading.Lock(), on="process")
