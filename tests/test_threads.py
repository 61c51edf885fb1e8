"""plait.Thread: threading.Thread's behaviour, plus result() and a strand."""

from __future__ import annotations

import threading

import pytest

import plait


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
