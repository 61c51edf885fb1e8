"""``plait.Process`` as a drop-in for ``multiprocessing.Process``, plus ``result()``."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
import weakref
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

import pytest

import plait
from plait._errors import SerializationError, WorkerCrashed
from plait._ipc.serialize import RemoteTraceback
from plait._processes import Process

SRC = Path(__file__).resolve().parents[1] / "src"


# -- what the children run -------------------------------------------------------------------


def return_sum(a: int, b: int, *, c: int = 0) -> int:
    return a + b + c


def raise_key_error() -> None:
    raise KeyError("missing")


def exit_with(code: Any) -> None:
    sys.exit(code)


def say_ready_then_sleep(conn: Connection) -> None:
    conn.send("ready")
    conn.close()
    time.sleep(60)


class Squarer(Process):
    """A subclass whose state (set in __init__) must travel to the child."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    def run(self) -> int:
        return self.value * self.value


class NameReporter(Process):
    def __init__(self) -> None:
        super(NameReporter, self).__init__()  # noqa: UP008 - the seed's spelling

    def run(self) -> str:
        return self.name


class Failing(Process):
    def run(self) -> None:
        raise RuntimeError("from run")


def _sleeper() -> tuple[Process, Any]:
    reader, writer = Pipe(duplex=False)
    p = Process(target=say_ready_then_sleep, args=(writer,))
    p.start()
    writer.close()
    try:
        assert reader.poll(20)
        assert reader.recv() == "ready"
    finally:
        reader.close()
    return p, None


# -- the stdlib surface ----------------------------------------------------------------------


def test_is_a_multiprocessing_process() -> None:
    p = Process(target=return_sum, args=(1, 2))
    assert isinstance(p, multiprocessing.process.BaseProcess)
    assert p.name.startswith("Process-")
    assert not p.is_alive()
    assert p.exitcode is None
    assert p.pid is None
    assert p.daemon is False
    assert isinstance(p.authkey, bytes)


def test_target_args_kwargs_and_result() -> None:
    p = Process(target=return_sum, args=(1, 2), kwargs={"c": 3})
    p.start()
    assert p.pid is not None
    assert p.ident == p.pid
    assert isinstance(p.sentinel, int)
    p.join(20)
    assert p.exitcode == 0
    assert not p.is_alive()
    assert p.result() == 6
    p.close()


def test_positional_signature_like_multiprocessing() -> None:
    p = Process(None, return_sum, "named", (4, 5), {"c": 1}, daemon=True)
    assert p.name == "named"
    assert p.daemon is True
    p.start()
    assert p.result(20) == 10
    p.join()


def test_subclass_state_travels_to_the_child() -> None:
    p = Squarer(7)
    p.start()
    p.join(20)
    assert p.exitcode == 0
    assert p.result() == 49


def test_subclass_name_is_class_name_and_counter() -> None:
    p = NameReporter()
    assert p.name.startswith("NameReporter-")
    p.start()
    assert p.result(20) == p.name  # the child sees the same name


def test_run_raising_gives_exitcode_1_and_result_reraises() -> None:
    p = Process(target=raise_key_error)
    p.start()
    p.join(20)
    assert p.exitcode == 1
    with pytest.raises(KeyError, match="missing") as info:
        p.result()
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "raise_key_error" in str(info.value.__cause__)


def test_subclass_run_raising() -> None:
    p = Failing()
    p.start()
    with pytest.raises(RuntimeError, match="from run"):
        p.result(20)
    assert p.exitcode == 1


@pytest.mark.parametrize(("code", "exitcode"), [(0, 0), (None, 0), (5, 5)])
def test_sys_exit_codes(code: Any, exitcode: int) -> None:
    p = Process(target=exit_with, args=(code,))
    p.start()
    p.join(20)
    assert p.exitcode == exitcode
    with pytest.raises(SystemExit):
        p.result()


def test_terminate_gives_minus_sigterm() -> None:
    p, _ = _sleeper()
    assert p.is_alive()
    p.terminate()
    p.join(20)
    assert p.exitcode == -signal.SIGTERM
    with pytest.raises(WorkerCrashed) as info:
        p.result()
    assert info.value.pid == p.pid
    assert info.value.signal == signal.SIGTERM


def test_kill_gives_minus_sigkill() -> None:
    p, _ = _sleeper()
    p.kill()
    p.join(20)
    assert p.exitcode == -signal.SIGKILL
    with pytest.raises(WorkerCrashed):
        p.result()


def test_join_timeout_returns_while_alive() -> None:
    p, _ = _sleeper()
    started = time.monotonic()
    p.join(0.05)
    assert time.monotonic() - started < 5
    assert p.is_alive()
    assert p.exitcode is None
    with pytest.raises(TimeoutError):
        p.result(timeout=0.01)
    p.kill()
    p.join()
    assert not p.is_alive()


@pytest.mark.parametrize("timeout", [-1, -0.5, 0])
def test_join_with_a_timeout_of_zero_or_less_only_looks(timeout: float) -> None:
    # multiprocessing: join(-1) returns at once (it used to park forever here).
    p, _ = _sleeper()
    try:
        started = time.monotonic()
        p.join(timeout)
        assert time.monotonic() - started < 5
        assert p.is_alive()
        assert p.exitcode is None
    finally:
        p.kill()
        p.join(20)
    assert p.exitcode == -signal.SIGKILL


def test_async_join_with_a_negative_timeout_only_looks() -> None:
    p, _ = _sleeper()
    try:
        asyncio.run(asyncio.wait_for(p.async_join(-1), 10))
        assert p.is_alive()
    finally:
        p.kill()
        p.join(20)


def test_a_dropped_process_is_freed_at_once_even_the_last_one() -> None:
    # The watcher's callback held the Process (a partial of a bound method): the last
    # Process started stayed alive after close() until another one finished.
    p = Process(target=return_sum, args=(1, 2))
    p.start()
    p.join(20)
    assert p.result(timeout=10) == 3
    popen_ref = weakref.ref(p._popen)
    p.close()
    ref = weakref.ref(p)
    del p
    assert ref() is None
    # The watcher let go of the child's Popen (and so of multiprocessing's finalizer that
    # closes its descriptors) once it was done with it: by the end of that round at most.
    deadline = time.monotonic() + 10
    while popen_ref() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert popen_ref() is None


def test_many_threads_join_at_once() -> None:
    import threading

    p, _ = _sleeper()
    codes: list[int | None] = []
    joiners = [
        threading.Thread(target=lambda: (p.join(), codes.append(p.exitcode))) for _ in range(8)
    ]
    for t in joiners:
        t.start()
    p.terminate()
    for t in joiners:
        t.join(20)
    assert codes == [-signal.SIGTERM] * 8


def test_join_parks_on_the_process() -> None:
    import threading

    from plait.testing import wait_parked

    p, _ = _sleeper()
    joiner = threading.Thread(target=p.join)
    joiner.start()
    wait_parked(on=p, count=1)  # diagnostics see the joining thread parked on p
    p.kill()
    joiner.join(20)
    assert not joiner.is_alive()
    assert p.exitcode == -signal.SIGKILL


def test_join_leaves_on_cancellation() -> None:
    from plait._core import CancelScope

    p, _ = _sleeper()
    with CancelScope() as scope:
        scope.cancel()
        p.join()  # a cancelled scope makes the park raise Cancelled, absorbed at exit
    assert scope.cancelled_caught
    assert p.is_alive()
    p.kill()
    p.join()


def test_a_started_process_is_a_strand() -> None:
    p, _ = _sleeper()
    strands = [s for s in plait.all_strands() if s.kind == "process" and s.pid == p.pid]
    assert len(strands) == 1
    assert strands[0].name == p.name
    assert strands[0].state == "running"
    p.kill()
    p.join()
    with pytest.raises(WorkerCrashed):
        p.result()
    assert not [s for s in plait.all_strands() if s.kind == "process" and s.pid == p.pid]


def test_active_children_sees_it() -> None:
    p, _ = _sleeper()
    assert p in multiprocessing.active_children()
    p.kill()
    p.join()
    assert p not in multiprocessing.active_children()


def test_start_twice_and_misuse() -> None:
    p = Process(target=return_sum, args=(1, 1))
    with pytest.raises(RuntimeError, match="start"):
        p.result()
    p.start()
    with pytest.raises(AssertionError):
        p.start()
    p.join()
    p.close()
    with pytest.raises(ValueError, match="closed"):
        p.is_alive()


def test_close_while_running_refuses() -> None:
    p, _ = _sleeper()
    with pytest.raises(ValueError, match="still running"):
        p.close()
    p.kill()
    p.join()
    p.close()


def test_unpicklable_argument_raises_at_start() -> None:
    import threading

    p = Process(target=return_sum, args=(1, threading.Lock()))
    with pytest.raises(SerializationError, match=r"arguments of return_sum\(\)"):
        p.start()
    assert p.pid is None
    assert not p.is_alive()


def test_lambda_target() -> None:
    p = Process(target=lambda base: base + os.getpid(), args=(1,))
    p.start()
    assert p.result(20) == p.pid + 1


def test_pipe_argument_crosses() -> None:
    parent_end, child_end = Pipe()

    def echo(conn: Connection) -> None:
        conn.send(conn.recv() * 2)

    p = Process(target=echo, args=(child_end,))
    p.start()
    child_end.close()
    parent_end.send(21)
    assert parent_end.recv() == 42
    p.join(20)
    parent_end.close()
    assert p.exitcode == 0


def put_square(q: Any, n: int) -> None:
    q.put(n * n)


def test_multiprocessing_queue_of_the_same_context_crosses() -> None:
    q = multiprocessing.get_context("forkserver").Queue()
    procs = [Process(target=put_square, args=(q, n)) for n in range(3)]
    for p in procs:
        p.start()
    assert sorted(q.get(timeout=20) for _ in procs) == [0, 1, 4]
    for p in procs:
        p.join(20)
    q.close()
    q.join_thread()


def test_lock_of_another_context_is_refused_with_multiprocessing_reason() -> None:
    lock = multiprocessing.get_context("fork").Lock()
    p = Process(target=return_sum, args=(lock, 1))
    with pytest.raises(SerializationError, match="same context"):
        p.start()


def test_cannot_pickle_a_process_outside_start() -> None:
    import pickle

    with pytest.raises(TypeError, match="while being started"):
        pickle.dumps(Process(target=return_sum))


def test_async_join_and_result() -> None:
    async def main() -> tuple[Any, int | None]:
        p = Process(target=return_sum, args=(2, 2))
        p.start()
        await p.async_join()
        return await p.async_result(), p.exitcode

    assert asyncio.run(main()) == (4, 0)


# -- the seed's programs, unchanged but for the import ---------------------------------------

SEED_DIRECT = """
from plait import Process
import time
def f(name):
    print('hello', name, time.ctime())
    time.sleep(1)
if __name__ == '__main__':
    p_list = []
    for i in range(3):
        p = Process(target=f, args=('alvin:%s' % i,))
        p_list.append(p)
        p.start()
    for p in p_list:
        p.join()
    print('end')
"""

SEED_SUBCLASS = """
from plait import Process
import time
class MyProcess(Process):
    def __init__(self):
        super(MyProcess, self).__init__()
    def run(self):
        print('hello', self.name, time.ctime())
        time.sleep(1)
if __name__ == '__main__':
    p_list = []
    for i in range(3):
        p = MyProcess()
        p_list.append(p)
        p.start()
    for p in p_list:
        p.join()
    print('end')
"""


def _run_seed(tmp_path: Path, source: str) -> tuple[list[str], float]:
    if not hasattr(plait, "Process"):
        pytest.skip("plait.Process is not exported yet")
    script = tmp_path / "seed.py"
    # The seed sleeps 1 s per child; 0.2 s keeps the test quick and shows the same thing.
    script.write_text(textwrap.dedent(source).replace("time.sleep(1)", "time.sleep(0.2)"))
    env = dict(os.environ, PYTHONPATH=str(SRC))
    # Buffered children write each line whole at exit; unbuffered, the seed's multi-piece
    # print() calls from three children interleave (as with multiprocessing itself).
    env.pop("PYTHONUNBUFFERED", None)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return out.stdout.splitlines(), elapsed


def test_seed_direct_program(tmp_path: Path) -> None:
    lines, _ = _run_seed(tmp_path, SEED_DIRECT)
    assert lines[-1] == "end"
    hellos = sorted(line.split()[1] for line in lines[:-1])
    assert hellos == ["alvin:0", "alvin:1", "alvin:2"]


def test_seed_subclass_program(tmp_path: Path) -> None:
    lines, _ = _run_seed(tmp_path, SEED_SUBCLASS)
    assert lines[-1] == "end"
    names = sorted(line.split()[1] for line in lines[:-1])
    assert names == ["MyProcess-1", "MyProcess-2", "MyProcess-3"]


SEED_LOCK = """
from plait._processes import Process
from plait._sync import Lock

def f(l, i):
    with l:
        print('hello world %s' % i)

if __name__ == '__main__':
    lock = Lock()
    for num in range(10):
        Process(target=f, args=(lock, num)).start()
"""


def test_seed_lock_program_children_never_joined(tmp_path: Path) -> None:
    # The seed never joins: the children are joined at exit before the lock they share is
    # released, as multiprocessing does.
    script = tmp_path / "seed_lock.py"
    script.write_text(textwrap.dedent(SEED_LOCK))
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=50,
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert sorted(out.stdout.splitlines()) == sorted(f"hello world {i}" for i in range(10))



class _Unpicklable:
    def __reduce__(self) -> Any:
        raise AttributeError("refuses to be pickled")


def test_a_queue_holding_an_unpicklable_item_is_named_at_start() -> None:
    # The queue's own SerializationError (naming the item) used to be replaced by a
    # second, misleading one about the queue's internals.
    q = plait.Queue()
    q.put(_Unpicklable())
    p = Process(target=return_sum, args=(q, 1))
    with pytest.raises(SerializationError, match="the item put into the queue") as info:
        p.start()
    assert "_Unpicklable" in str(info.value)
    assert "WaitQueue" not in str(info.value)


# -- multiprocessing's module-level API on plait ---------------------------------------------


def current_start_method() -> str | None:
    return multiprocessing.get_start_method(allow_none=True)


def add_to_shared(value: Any, array: Any, n: int) -> None:
    with value.get_lock():
        value.value += n
    array[0] = n


def test_set_start_method_chooses_how_plait_processes_start() -> None:
    assert plait.get_start_method(allow_none=True) is None
    assert plait.get_start_method() == "forkserver"
    plait.set_start_method("spawn")
    try:
        with pytest.raises(RuntimeError, match="already been set"):
            plait.set_start_method("forkserver")
        assert plait.get_start_method() == "spawn"
        p = Process(target=current_start_method)
        p.start()
        assert p.result(timeout=50) == "spawn"
    finally:
        plait.set_start_method(None, force=True)
    assert plait.get_start_method(allow_none=True) is None


@pytest.mark.parametrize("bad", ["threads", 3, ""])
def test_set_start_method_refuses_an_unknown_method(bad: Any) -> None:
    with pytest.raises(ValueError, match="forkserver, spawn, fork"):
        plait.set_start_method(bad)
    with pytest.raises(ValueError, match="forkserver, spawn, fork"):
        plait.get_context(bad)
    assert plait.get_start_method(allow_none=True) is None


def test_get_context_gives_plait_classes_for_that_method() -> None:
    context = plait.get_context("spawn")
    assert plait.get_context("spawn") is context
    assert context.get_start_method() == "spawn"
    assert issubclass(context.Process, plait.Process)
    assert context.Queue is plait.Queue
    assert context.Lock is plait.Lock
    assert context.Pipe is plait.Pipe
    p = context.Process(target=current_start_method)
    p.start()
    assert p.result(timeout=50) == "spawn"
    assert plait.get_context().get_start_method() == "forkserver"


def test_value_and_array_cross_to_a_plait_process() -> None:
    # multiprocessing.Value's lock is made in the default context; plait's in the context
    # plait starts children with, so it crosses (the stdlib's is refused).
    value = plait.Value("i", 1)
    array = plait.Array("i", [0, 0])
    p = Process(target=add_to_shared, args=(value, array, 41))
    p.start()
    p.join(50)
    assert p.exitcode == 0
    assert value.value == 42
    assert list(array) == [41, 0]
    raw = plait.RawArray("d", 3)
    assert list(raw) == [0.0, 0.0, 0.0]
    assert plait.RawValue("i", 7).value == 7


def test_joinable_queue_has_task_done_and_join() -> None:
    q = plait.JoinableQueue()
    q.put(1)
    assert q.get(timeout=5) == 1
    q.task_done()
    q.join()
