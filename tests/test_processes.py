"""Process calls (what ``TaskGroup.spawn(on="process")`` runs): results, errors, crashes.

Events across processes are ordered by pipes (the child says "ready" before the parent
acts), never by sleeps.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types
from concurrent.futures import Future
from multiprocessing.connection import Connection, Pipe
from typing import Any

import pytest

from plait._errors import Cancelled, RemoteError, SerializationError, WorkerCrashed
from plait._ipc.serialize import RemoteTraceback
from plait._processes import ProcessCall, start_process_call

# -- functions the children run (module level: found by reference in the child) -----------


def add(a: int, b: int = 0) -> int:
    return a + b


def fail_with_value_error(text: str) -> None:
    raise ValueError(text)


class Unpicklable(Exception):
    """Its __init__ takes two arguments, so the pickled form (one argument) cannot load."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def fail_unpicklable() -> None:
    raise Unpicklable("left", "right")


class HoldsALock(Exception):
    def __init__(self) -> None:
        super().__init__("holding a lock")
        self.lock = threading.Lock()


def fail_with_unpicklable_attribute() -> None:
    raise HoldsALock()


def return_lock() -> Any:
    return threading.Lock()


def return_child_only_object() -> Any:
    # A class whose module exists only in the child: it pickles there, not loads here.
    module = types.ModuleType("plait_child_only_module")
    exec("class Thing:\n    pass\n", module.__dict__)
    sys.modules["plait_child_only_module"] = module
    return module.Thing()


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def exit_three() -> None:
    os._exit(3)


def big_result(size: int) -> bytes:
    return b"x" * size


def ready_then_sleep(conn: Connection, ignore_term: bool) -> None:
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn.send("ready")
    conn.close()
    time.sleep(60)


def cleanup_on_cancel(conn: Connection, swallow: bool) -> None:
    try:
        conn.send("ready")
        time.sleep(60)
    except Cancelled:
        conn.send("cancelled")
        if swallow:  # ignore the cancellation: SIGKILL comes after the grace
            time.sleep(60)
        raise
    finally:
        conn.send("cleaned up")
        conn.close()


def my_pid() -> int:
    return os.getpid()


def parent_pid() -> int:
    return os.getppid()


def call_in_grandchild(method: str) -> tuple[int, int]:
    call = start_process_call(parent_pid, start_method=method)  # type: ignore[arg-type]
    return os.getpid(), call.future.result(20)


# -- helpers ---------------------------------------------------------------------------------


def _result(call: ProcessCall, timeout: float = 20) -> Any:
    return call.future.result(timeout)


def _start_sleeper(ignore_term: bool = False) -> ProcessCall:
    reader, writer = Pipe(duplex=False)
    try:
        call = start_process_call(ready_then_sleep, (writer, ignore_term))
    finally:
        writer.close()
    try:
        assert reader.poll(20), "the child never said it was ready"
        assert reader.recv() == "ready"
    finally:
        reader.close()
    return call


# -- results ---------------------------------------------------------------------------------


def test_result_comes_back() -> None:
    call = start_process_call(add, (2, 3))
    assert _result(call) == 5
    call.join(5)
    assert call.exitcode == 0
    assert call.pid != os.getpid()


def test_kwargs_and_name() -> None:
    call = start_process_call(add, (2,), {"b": 40}, name="adder")
    assert call.name == "adder"
    assert _result(call) == 42
    assert "adder" in repr(call)


def test_handle_surface() -> None:
    call = start_process_call(add, (1, 2))
    assert isinstance(call.sentinel, int)
    assert call.process.pid == call.pid
    assert _result(call) == 3
    assert call.done()
    call.join()
    assert call.exitcode == 0
    assert "done" in repr(call)


def test_daemon_call_cannot_start_children() -> None:
    call = start_process_call(call_in_grandchild, ("forkserver",), daemon=True)
    with pytest.raises(AssertionError, match="daemonic"):
        _result(call)


def test_default_name_is_the_function() -> None:
    call = start_process_call(add, (1, 1))
    assert call.name == "add"
    assert _result(call) == 2


def test_pid_is_the_child() -> None:
    call = start_process_call(my_pid)
    assert _result(call) == call.pid


def test_lambda_and_closure_targets() -> None:
    offset = 10

    def closure(x: int) -> int:
        return x + offset

    assert _result(start_process_call(lambda x: x * 2, (21,))) == 42
    assert _result(start_process_call(closure, (5,))) == 15


def test_many_calls_at_once() -> None:
    calls = [start_process_call(add, (i, i)) for i in range(12)]
    assert [_result(c) for c in calls] == [2 * i for i in range(12)]


def test_large_result_joined_first_does_not_deadlock() -> None:
    size = 20 * 1024 * 1024  # far beyond a pipe's buffer
    call = start_process_call(big_result, (size,))
    call.join(30)  # the child can exit only once its result has been read
    assert call.exitcode == 0
    assert len(_result(call)) == size


def test_done_callback_runs() -> None:
    seen: list[Any] = []
    done = threading.Event()
    call = start_process_call(add, (1, 2))

    def on_done(fut: Future[Any]) -> None:
        seen.append(fut.result())
        done.set()

    call.future.add_done_callback(on_done)
    assert done.wait(20)
    assert seen == [3]


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_start_methods(method: str) -> None:
    if method == "fork":
        # fork only when asked by name, and then the child is a direct child of this process.
        call = start_process_call(parent_pid, start_method="fork")
        assert _result(call) == os.getpid()
    else:
        call = start_process_call(add, (1, 2), start_method=method)  # type: ignore[arg-type]
        assert _result(call) == 3


@pytest.mark.parametrize(("outer", "inner"), [("forkserver", "forkserver"), ("fork", "fork")])
def test_a_child_starts_its_own_process_calls(outer: str, inner: str) -> None:
    call = start_process_call(call_in_grandchild, (inner,), start_method=outer)  # type: ignore[arg-type]
    child, grandchilds_parent = _result(call)
    assert child == call.pid
    if inner == "fork":
        assert grandchilds_parent == child  # a fresh watcher in the forked child reaped it


def test_calls_started_from_many_threads() -> None:
    results: list[int] = []
    lock = threading.Lock()

    def starter(base: int) -> None:
        calls = [start_process_call(add, (base, i)) for i in range(4)]
        values = [_result(c) for c in calls]
        with lock:
            results.extend(values)

    threads = [threading.Thread(target=starter, args=(100 * k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted(100 * k + i for k in range(4) for i in range(4))


def test_forkserver_is_the_default() -> None:
    # The child's OS parent is the fork server, not this process (so nothing was forked here).
    call = start_process_call(parent_pid)
    assert _result(call) != os.getpid()


def test_unknown_start_method() -> None:
    with pytest.raises(ValueError, match="start method"):
        start_process_call(add, (1, 2), start_method="vfork")  # type: ignore[arg-type]


def test_not_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        start_process_call(42, ())  # type: ignore[arg-type]


def test_one_watcher_thread() -> None:
    calls = [start_process_call(add, (i,)) for i in range(3)]
    for c in calls:
        _result(c)
    watchers = [t for t in threading.enumerate() if t.name == "plait-process-watcher"]
    assert len(watchers) == 1
    assert watchers[0].daemon


# -- exceptions ------------------------------------------------------------------------------


def test_exception_with_remote_traceback_as_cause() -> None:
    call = start_process_call(fail_with_value_error, ("boom",))
    with pytest.raises(ValueError, match="boom") as info:
        _result(call)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "fail_with_value_error" in str(cause)
    assert "raise ValueError(text)" in str(cause)
    call.join(5)
    assert call.exitcode == 1


def test_exception_that_cannot_be_unpickled_arrives_as_remote_error() -> None:
    call = start_process_call(fail_unpicklable)
    with pytest.raises(RemoteError) as info:
        _result(call)
    error = info.value
    assert error.type_name == "Unpicklable"
    assert error.message == "left/right"
    assert "fail_unpicklable" in error.traceback_text
    assert isinstance(error.__cause__, RemoteTraceback)


def test_exception_that_cannot_be_pickled_arrives_as_remote_error() -> None:
    call = start_process_call(fail_with_unpicklable_attribute)
    with pytest.raises(RemoteError) as info:
        _result(call)
    assert info.value.type_name == "HoldsALock"
    assert info.value.message == "holding a lock"
    assert "fail_with_unpicklable_attribute" in info.value.traceback_text


def test_unpicklable_argument_raises_at_the_call_naming_it() -> None:
    before = {p.pid for p in _children()}
    lock = threading.Lock()
    with pytest.raises(SerializationError) as info:
        start_process_call(add, (1, {"guard": lock}))
    error = info.value
    assert "the arguments of add()" in str(error)
    assert "lock" in error.culprit
    assert "guard" in error.path
    assert {p.pid for p in _children()} <= before  # no process was started


def test_unpicklable_keyword_argument_is_named() -> None:
    with pytest.raises(SerializationError, match="keyword arguments of add"):
        start_process_call(add, (1,), {"b": threading.Lock()})


def test_unpicklable_result() -> None:
    call = start_process_call(return_lock)
    with pytest.raises(SerializationError, match=r"result of return_lock\(\)"):
        _result(call)


def test_result_that_cannot_be_unpickled_in_the_parent() -> None:
    call = start_process_call(return_child_only_object)
    with pytest.raises(SerializationError, match="cannot be unpickled here"):
        _result(call)


class FailsToLoad:
    """Pickles fine here; loading it in the child raises ValueError."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (int, ("not a number",))


def test_argument_that_cannot_be_unpickled_in_the_child() -> None:
    call = start_process_call(add, (FailsToLoad(), 1))
    with pytest.raises(SerializationError, match="could not unpickle") as info:
        _result(call)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "not a number" in str(info.value)


# -- crashes and termination -----------------------------------------------------------------


def test_killed_by_sigkill_is_worker_crashed() -> None:
    call = start_process_call(kill_myself)
    with pytest.raises(WorkerCrashed) as info:
        _result(call)
    error = info.value
    assert error.pid == call.pid
    assert error.exitcode == -signal.SIGKILL
    assert error.signal == signal.SIGKILL
    assert "SIGKILL" in str(error)
    assert "kill_myself" in str(error)


def test_os_exit_is_worker_crashed_with_its_code() -> None:
    call = start_process_call(exit_three)
    with pytest.raises(WorkerCrashed) as info:
        _result(call)
    assert info.value.exitcode == 3
    assert info.value.signal is None
    assert call.exitcode == 3


def test_kill_from_the_parent() -> None:
    call = _start_sleeper()
    call.kill()
    with pytest.raises(WorkerCrashed) as info:
        _result(call)
    assert info.value.signal == signal.SIGKILL


def test_terminate_ends_a_cooperative_child_with_sigterm() -> None:
    call = _start_sleeper()
    call.terminate(grace=30)
    with pytest.raises(WorkerCrashed) as info:
        _result(call)
    assert info.value.signal == signal.SIGTERM
    assert call.exitcode == -signal.SIGTERM


def test_terminate_kills_a_child_that_ignores_sigterm_after_the_grace() -> None:
    call = _start_sleeper(ignore_term=True)
    started = time.monotonic()
    call.terminate(grace=0.3)  # returns at once; the watcher kills after the grace
    assert time.monotonic() - started < 0.25
    with pytest.raises(WorkerCrashed) as info:
        _result(call)
    assert info.value.signal == signal.SIGKILL
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("swallow", [False, True])
def test_terminate_lets_the_child_clean_up_within_the_grace(swallow: bool) -> None:
    reader, writer = Pipe(duplex=False)
    try:
        call = start_process_call(cleanup_on_cancel, (writer, swallow))
    finally:
        writer.close()
    try:
        assert reader.poll(20)
        assert reader.recv() == "ready"
        call.terminate(grace=0.3 if swallow else 30)
        assert reader.poll(20)
        assert reader.recv() == "cancelled"  # SIGTERM raised Cancelled in the child
        with pytest.raises(WorkerCrashed) as info:
            _result(call)
        if swallow:
            assert info.value.signal == signal.SIGKILL
        else:
            assert reader.recv() == "cleaned up"  # the finally block ran
            assert info.value.signal == signal.SIGTERM
    finally:
        reader.close()


def test_terminate_after_done_is_a_no_op() -> None:
    call = start_process_call(add, (1, 2))
    assert _result(call) == 3
    call.terminate()
    call.kill()
    assert call.exitcode == 0


def _children() -> list[Any]:
    import psutil

    return psutil.Process().children(recursive=True)


def sleep_then_return(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


@pytest.mark.slow
def test_stress_many_calls_with_kills_and_terminates() -> None:
    import random

    rng = random.Random(1234)
    for _wave in range(4):
        calls = [start_process_call(sleep_then_return, (rng.random() * 0.2, i)) for i in range(40)]
        fates = {}
        for i, call in enumerate(calls):
            fate = rng.choice(["wait", "wait", "kill", "terminate"])
            fates[i] = fate
            if fate == "kill":
                call.kill()
            elif fate == "terminate":
                call.terminate(grace=0.1)
        for i, call in enumerate(calls):
            error = call.future.exception(60)
            if error is None:
                assert call.future.result() == i
            else:
                assert isinstance(error, WorkerCrashed), error
                assert fates[i] != "wait", f"call {i} crashed without being killed: {error}"


def test_the_exit_join_passes_over_a_child_that_another_thread_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At exit, a warm pool's reaper thread may close a worker that has left between
    # active_children() and the join: "process object is closed" must not be raised out of
    # the exit hook (it was printed after the tour's last scene).
    import multiprocessing

    from plait._processes import _process

    child = multiprocessing.get_context("forkserver").Process(target=int, daemon=True)
    child.start()
    child.join(20)
    assert child.exitcode == 0
    child.close()
    monkeypatch.setattr(_process.mp_process, "active_children", lambda: [child])
    _process._join_children_at_exit()  # before the fix: ValueError from terminate()
