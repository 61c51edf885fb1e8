"""The cluster engines find finished tasks in waves (``plait.pool.backends._waves``): one
watcher thread, not a done-callback per engine task. Engine-free tests of that seam: the
watcher with a scripted ``wave``, and the Dask engine's answer when a result it saw
finished is lost with its worker before it was fetched (it is computed again, not
reported as cancelled)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from plait.pool._tasks import Task
from plait.pool.backends import _dask, _waves


def _task(task_id: int, handle: Any) -> Task:
    task = Task(task_id, b"", [task_id], None, label=f"t{task_id}", retries=0, timeout=None)  # type: ignore[arg-type]
    task.worker = handle
    return task


class _ScriptedWaves:
    """A ``wave`` that reports the handles a test lets finish, and records each call."""

    def __init__(self) -> None:
        self.finished: set[str] = set()
        self.calls: list[tuple[list[str], bool]] = []
        self.cond = threading.Condition()

    def wave(self, handles: list[str], idle: bool) -> list[str]:
        with self.cond:
            self.calls.append((list(handles), idle))
            self.cond.notify_all()
            self.cond.wait(0.01)  # (a real wave waits on the engine)
            return [h for h in handles if h in self.finished]


def test_the_watcher_hands_over_finished_tasks_together_oldest_first_and_keeps_the_rest() -> None:
    script = _ScriptedWaves()
    found: list[list[int]] = []
    got = threading.Event()

    def on_found(tasks: list[Task]) -> None:
        found.append([t.id for t in tasks])
        got.set()

    watcher = _waves.WaveWatcher("test-waves", script.wave, on_found)
    watcher.start()
    try:
        watcher.add([_task(k, f"h{k}") for k in range(3)])
        with script.cond:
            script.finished |= {"h0", "h2"}
        assert got.wait(10)
        assert found[0] == [0, 2]  # together, in the order they were submitted
        assert list(watcher.watching) == ["h1"]  # still watched
        with script.cond:  # no result in the last waves: the watcher waits idly
            assert script.cond.wait_for(lambda: script.calls[-1] == (["h1"], True), 10)
        got.clear()
        with script.cond:
            script.finished.add("h1")
        assert got.wait(10) and found[-1] == [1]
    finally:
        watcher.stop()
    assert not watcher.thread.is_alive()


def test_the_watcher_outlives_a_failing_wave() -> None:
    calls = []
    found = threading.Event()

    def wave(handles: list[str], idle: bool) -> list[str]:
        calls.append(idle)
        if len(calls) == 1:
            raise RuntimeError("the engine hiccuped")
        return handles

    watcher = _waves.WaveWatcher("test-waves", wave, lambda tasks: found.set())
    watcher.start()
    try:
        watcher.add([_task(1, "h1")])
        assert found.wait(10)
    finally:
        watcher.stop()


class _Future:
    """What the Dask engine reads of a ``distributed.Future``."""

    def __init__(self, key: str, status: str, value: Any = None) -> None:
        self.key = key
        self.status = status
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        return self.value


class _Client:
    def __init__(self, lose: _Future) -> None:
        self.lose = lose

    def gather(self, futures: list[_Future]) -> list[Any]:
        self.lose.status = "lost"  # its worker died after it finished: the data is gone
        raise RuntimeError("Couldn't gather 1 keys")


def test_a_dask_result_lost_with_its_worker_before_it_was_fetched_is_run_again() -> None:
    pytest.importorskip("distributed", reason="the Dask backend needs 'distributed'")
    # Seen finished by a wave; then one is lost before the fetch, one during it.
    kept, before = _Future("k1", "finished", b"reply"), _Future("k2", "lost")
    during = _Future("k3", "finished", b"reply")
    engine = object.__new__(_dask.DaskEngine)
    engine.client = _Client(lose=during)
    tasks = [_task(1, kept), _task(2, before), _task(3, during)]
    outcomes = engine._collect(tasks)
    assert outcomes == [("ok", b"reply"), ("running", None), ("running", None)]
    assert tasks[0].worker is None  # fetched: the engine may forget it
    assert tasks[1].worker is before and tasks[2].worker is during  # watched again, below

    rewatched: list[list[Task]] = []
    engine.lock = threading.Lock()
    engine.inflight = {2: tasks[1]}
    engine.watcher = type("W", (), {"add": lambda self, ts: rewatched.append(ts)})()
    engine._settle(tasks[1], "running", None)
    assert rewatched == [[tasks[1]]] and engine.inflight == {2: tasks[1]}  # still in flight
