"""plait.Thread: threading.Thread's behaviour, plus result() and a strand."""

from __future__ import annotations

import gc
import sys
import threading
import traceback
import weakref

import pytest

import plait
import plait.testing


def test_target_args_kwargs_and_result() -> None:
    t = plait.Thread(target=lambda a, b=0: a + b, args=(1,), kwargs={"b": 2}, name="adder")
    t.start()
    assert t.result(timeout=5) == 3
    assert t.name == "adder"
    assert not t.is_alive()
    assert isinstance(t, threading.Thread)
    assert t.ident is not None


def test_subclass_with_run() -> None:
    class MyThread(plait.Thread):
        def __init__(self, num: int) -> None:
            plait.Thread.__init__(self)
            self.num = num
            self.seen: plait.Strand | None = None

        def run(self) -> int:  # type: ignore[override]
            self.seen = plait.current_strand()
            return self.num * 2

    t = MyThread(21)
    t.start()
    t.join()
    assert t.result() == 42
    assert t.seen is t.strand
    assert t.strand.kind == "thread"
    assert t.strand.name == t.name


def test_exception_goes_to_excepthook_and_result(monkeypatch: pytest.MonkeyPatch) -> None:
    hooked: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(args.exc_value))

    def boom() -> None:
        raise ValueError("bad")

    t = plait.Thread(target=boom)
    t.start()
    t.join()  # join never raises, as in threading
    with pytest.raises(ValueError, match="bad"):
        t.result()
    assert len(hooked) == 1
    assert isinstance(hooked[0], ValueError)


def test_result_timeout_and_not_started() -> None:
    release = threading.Event()
    t = plait.Thread(target=release.wait)
    with pytest.raises(RuntimeError, match="never started"):
        t.result()
    t.start()
    with pytest.raises(TimeoutError, match="still running"):
        t.result(timeout=0.01)
    release.set()
    assert t.result(timeout=5) is True


def test_daemon_and_default_names_like_threading() -> None:
    t = plait.Thread(target=lambda: None, daemon=True)
    assert t.daemon
    assert t.name.startswith("Thread-")
    t.start()
    t.join()
    with pytest.raises(RuntimeError, match="threads can only be started once"):
        t.start()


def test_strand_leaves_registry_when_thread_ends() -> None:
    t = plait.Thread(target=lambda: None)
    t.start()
    t.join()
    assert t.strand not in plait.all_strands()
    assert t.strand.state == "done"


def test_import_plait_as_threading_names() -> None:
    import plait as threading_like

    assert threading_like.current_thread() is threading.current_thread()
    assert threading_like.currentThread is threading.current_thread
    assert threading_like.get_ident() == threading.get_ident()
    assert threading_like.main_thread() is threading.main_thread()
    assert threading_like.active_count() >= 1


class _Owner:
    """Owns a thread whose target is one of its methods (threading's refcycle test)."""

    def __init__(self, should_raise: bool) -> None:
        self.should_raise = should_raise
        self.thread = plait.Thread(target=self.work, args=(self,), kwargs={"again": self})

    def work(self, other: object, again: object) -> str:
        if self.should_raise:
            raise KeyError("from work")
        return "done"


@pytest.mark.parametrize("should_raise", [False, True], ids=["returns", "raises"])
def test_a_finished_thread_keeps_no_reference_cycle(
    should_raise: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a raising target, the kept exception's traceback held the frames (and through
    # them the owner): it was freed only by the cyclic GC. Without GC it must go at once.
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    gc.disable()
    try:
        owner = _Owner(should_raise)
        owner.thread.start()
        owner.thread.join(10)
        assert not owner.thread.is_alive()
        owner_ref = weakref.ref(owner)
        thread_ref = weakref.ref(owner.thread)
        del owner
        assert owner_ref() is None
        assert thread_ref() is None
    finally:
        gc.enable()


def test_result_reraises_with_the_lines_after_frames_are_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threading, "excepthook", lambda args: None)

    def inner() -> None:
        raise ValueError("deep")

    def outer() -> None:
        inner()

    t = plait.Thread(target=outer)
    t.start()
    t.join(10)
    with pytest.raises(ValueError, match="deep") as info:
        t.result()
    names = [entry.name for entry in traceback.extract_tb(info.value.__traceback__)]
    assert names[-2:] == ["outer", "inner"]


def test_excepthook_sees_the_exceptions_own_traceback() -> None:
    seen: list[threading.ExceptHookArgs] = []
    old = threading.excepthook
    threading.excepthook = seen.append
    try:
        t = plait.Thread(target=lambda: 1 / 0)
        t.start()
        t.join(10)
    finally:
        threading.excepthook = old
    assert len(seen) == 1
    assert seen[0].exc_type is ZeroDivisionError
    assert seen[0].exc_traceback is seen[0].exc_value.__traceback__
    assert seen[0].thread is t


def test_run_set_on_the_instance_is_kept() -> None:
    t = plait.Thread()
    t.run = lambda: 42  # type: ignore[method-assign]
    t.start()
    assert t.result(timeout=10) == 42
    assert t.run() == 42


def test_system_exit_in_a_thread_is_silent_as_in_threading(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)  # not pytest's
    t = plait.Thread(target=sys.exit, args=(3,))
    t.start()
    t.join(10)
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        t.result()


def test_timer_fires_after_its_interval_and_returns_the_result() -> None:
    fired = plait.Event()
    timer = plait.Timer(0.01, lambda a, b: fired.set() or a + b, args=(1,), kwargs={"b": 2})
    assert isinstance(timer, plait.Thread)
    assert isinstance(timer, threading.Thread)
    timer.start()
    assert fired.wait(10)
    assert timer.result(timeout=10) == 3
    assert timer.finished.is_set()


def test_timer_cancelled_never_fires() -> None:
    calls: list[int] = []
    timer = plait.Timer(60, calls.append, args=(1,))
    timer.start()
    timer.cancel()
    timer.join(10)
    assert not timer.is_alive()
    assert calls == []
    assert timer.result() is None


def test_timer_default_arguments_are_not_shared() -> None:
    first = plait.Timer(1, print)
    second = plait.Timer(1, print)
    first.args.append("x")  # type: ignore[union-attr]
    first.kwargs["k"] = 1  # type: ignore[index]
    assert second.args == [] and second.kwargs == {}


def test_timer_wait_is_a_plait_park() -> None:
    timer = plait.Timer(60, print)
    timer.start()
    try:
        plait.testing.wait_parked(on=timer.finished, count=1, timeout=10)
    finally:
        timer.cancel()
        timer.join(10)


def test_join_parks_on_the_thread_strand_and_a_cancel_scope_ends_it() -> None:
    gate = plait.Event()
    t = plait.Thread(target=gate.wait, args=(20,))
    t.start()
    try:
        with pytest.raises(RuntimeError, match="cannot join current thread"):
            threading.current_thread().join()  # (threading's own errors stay)
        with plait.move_on_after(20) as scope:

            def cancel_when_parked() -> None:
                plait.testing.wait_parked(on=t.strand, count=1, timeout=10)
                scope.cancel()

            helper = threading.Thread(target=cancel_when_parked)
            helper.start()
            t.join()  # parked on t's strand until the scope is cancelled
        helper.join(10)
        assert scope.cancelled_caught
        assert t.is_alive()
    finally:
        gate.set()
        t.join(10)
    assert not t.is_alive()
