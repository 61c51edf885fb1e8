"""Lock-order checking in debug mode: an inversion is reported the first time both orders
have been seen, on a run that never deadlocked."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import plait

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def debug_mode() -> Iterator[None]:
    was = plait.debug(True)
    try:
        yield
    finally:
        plait.debug(was)


def _in_thread(fn: Callable[[], None]) -> None:
    t = plait.Thread(target=fn)
    t.start()
    t.join(10)
    assert not t.is_alive()


def test_lock_order_warning_is_a_runtime_warning() -> None:
    assert issubclass(plait.LockOrderWarning, RuntimeWarning)


def test_an_inversion_is_reported_once_with_both_orders(debug_mode: None) -> None:
    a, b = plait.Lock(), plait.RLock()

    def a_then_b() -> None:
        with a, b:
            pass

    def b_then_a() -> None:
        with b, a:
            pass

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        a_then_b()  # one order, in this thread...
        _in_thread(a_then_b)
        b_then_a()  # ...then the other, never at the same time: no deadlock, a warning
        b_then_a()
        _in_thread(b_then_a)
    found = [w for w in seen if issubclass(w.category, plait.LockOrderWarning)]
    assert len(found) == 1
    text = str(found[0].message)
    assert text.count("test_lockdep.py") >= 4  # both orders' lines
    assert "a_then_b" in text and "b_then_a" in text
    assert found[0].filename == __file__


def test_one_order_everywhere_is_never_reported(debug_mode: None) -> None:
    a, b, c = plait.Lock(), plait.Lock(), plait.RLock()
    with warnings.catch_warnings():
        warnings.simplefilter("error", plait.LockOrderWarning)
        for _ in range(3):
            with a, b, c:
                pass
            with a, c:
                pass
            with b:
                pass


def test_as_an_error_the_acquire_raises_and_holds_nothing(debug_mode: None) -> None:
    a, b = plait.Lock(), plait.Lock()
    with a, b:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error", plait.LockOrderWarning)
        with b:
            with pytest.raises(plait.LockOrderWarning), a:
                pass
            assert not a.locked()
        assert not b.locked()


def test_no_checking_outside_debug_mode() -> None:
    was = plait.debug(False)
    try:
        a, b = plait.Lock(), plait.Lock()
        with warnings.catch_warnings():
            warnings.simplefilter("error", plait.LockOrderWarning)
            with a, b:
                pass
            with b, a:
                pass
    finally:
        plait.debug(was)


def test_plait_run_names_the_creation_lines(tmp_path: Path) -> None:
    script = tmp_path / "inverts.py"
    script.write_text(
        "import threading\n"
        "first = threading.Lock()\n"
        "second = threading.Lock()\n"
        "def one():\n"
        "    with first, second:\n"
        "        pass\n"
        "def two():\n"
        "    with second, first:\n"
        "        pass\n"
        "for fn in (one, two):\n"
        "    t = threading.Thread(target=fn)\n"
        "    t.start()\n"
        "    t.join()\n"
        "print('done')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "plait.cli", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert "LockOrderWarning" in done.stderr
    assert "created at " + str(script) + ":2" in done.stderr
    assert "created at " + str(script) + ":3" in done.stderr
